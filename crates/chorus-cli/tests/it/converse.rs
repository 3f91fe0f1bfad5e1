//! AI-to-AI conversations on the real server with the tiny model: `POST /api/v1/conversations`
//! streamed (the SSE events parsed as a client sees them) and whole, the exchanges stored in
//! the session with their speakers, `GET /api/v1/conversations/{id}`, a card talking with an
//! ad-hoc personality, cancel and delete stopping a long one, `chorus converse` printing each
//! exchange, and bad requests answered 400 naming the field.

use std::path::Path;
use std::time::Duration;

use chorus_client::{ClientError, ConversationEvent};
use chorus_proto::character::{Conversation, ConversationRequest, Exchange, Participant};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::cli::{chorus, text};
use crate::{client, runtime, server};

fn adhoc(name: &str, personality: &str) -> Participant {
    Participant { character: None, name: Some(name.into()), personality: Some(personality.into()), model: None }
}

fn two(turns: u32, max_tokens: u32) -> ConversationRequest {
    ConversationRequest {
        participants: vec![adhoc("Ann", "A retired sailor."), adhoc("Bob", "A curious fish.")],
        topic: "the sea".into(),
        turns: Some(turns),
        max_tokens: Some(max_tokens),
        stream: true,
    }
}

/// `(event, data)` of each server-sent event of a body.
fn sse_events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            (!event.is_empty() || !data.is_empty()).then_some((event, data))
        })
        .collect()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(300)).build().unwrap()
}

async fn post(url: &str, body: &Value) -> (u16, String) {
    let response = http().post(format!("{url}/api/v1/conversations")).json(body).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn get_json(url: &str, path: &str) -> (u16, Value) {
    let response = http().get(format!("{url}{path}")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The stored exchanges of a session: the assistant messages' `(speaker, content)`.
async fn stored(url: &str, session: &str) -> Vec<(String, String)> {
    let (status, messages) = get_json(url, &format!("/api/v1/sessions/{session}/messages")).await;
    assert_eq!(status, 200, "{messages}");
    let data = messages["data"].as_array().unwrap();
    assert_eq!(data[0]["role"], "user");
    assert_eq!(data[0]["content"], "Let's talk about: the sea");
    data.iter()
        .filter(|m| m["role"] == "assistant")
        .map(|m| (m["metadata"]["name"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned()))
        .collect()
}

fn alternate(exchanges: &[Exchange], names: &[&str]) {
    for (i, e) in exchanges.iter().enumerate() {
        assert_eq!(e.speaker, names[i % names.len()], "exchange {i}: {exchanges:#?}");
        assert_eq!(e.turn, i as u32 + 1);
        assert_eq!(e.model.as_deref(), Some("tiny"));
    }
}

#[test]
fn a_streamed_conversation_is_stored_and_read_back() {
    let srv = server(&[]);
    runtime().block_on(async {
        let (status, body) = post(&srv.url, &serde_json::to_value(two(6, 8)).unwrap()).await;
        assert_eq!(status, 200, "{body}");
        let events = sse_events(&body);
        let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(
            names,
            ["conversation", "exchange", "exchange", "exchange", "exchange", "exchange", "exchange", "done", ""]
        );
        assert_eq!(events.last().unwrap().1, "[DONE]");

        let started: Value = serde_json::from_str(&events[0].1).unwrap();
        assert_eq!(started["participants"], json!(["Ann", "Bob"]));
        assert_eq!(started["topic"], "the sea");
        let session = started["session_id"].as_str().unwrap().to_owned();
        assert!(session.starts_with("ses_"), "{session}");

        let exchanges: Vec<Exchange> = events[1..7].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
        alternate(&exchanges, &["Ann", "Bob"]);
        let done: Conversation = serde_json::from_str(&events[7].1).unwrap();
        assert_eq!((done.status.as_str(), done.session_id.as_str()), ("completed", session.as_str()));
        assert_eq!(done.exchanges, exchanges);

        // The session holds the exchanges with their speakers, and reads back as the same.
        let kept = stored(&srv.url, &session).await;
        let sent: Vec<(String, String)> = exchanges.iter().map(|e| (e.speaker.clone(), e.message.clone())).collect();
        assert_eq!(kept, sent);
        let (status, back) = get_json(&srv.url, &format!("/api/v1/conversations/{session}")).await;
        assert_eq!(status, 200, "{back}");
        assert_eq!(serde_json::from_value::<Conversation>(back).unwrap(), done);
        let (_, s) = get_json(&srv.url, &format!("/api/v1/sessions/{session}")).await;
        assert_eq!((s["title"].as_str(), s["status"].as_str()), (Some("Conversation: the sea"), Some("idle")));

        // Without `stream`, the answer is the whole conversation.
        let mut whole = serde_json::to_value(two(3, 4)).unwrap();
        whole["stream"] = json!(false);
        let (status, body) = post(&srv.url, &whole).await;
        assert_eq!(status, 200, "{body}");
        let c: Conversation = serde_json::from_str(&body).unwrap();
        assert_eq!((c.status.as_str(), c.exchanges.len()), ("completed", 3));
        alternate(&c.exchanges, &["Ann", "Bob"]);

        // A session that is no conversation, and none at all.
        let plain = client(&srv.url, None).create_session(&Default::default()).await.unwrap();
        let (status, e) = get_json(&srv.url, &format!("/api/v1/conversations/{}", plain.id)).await;
        assert_eq!((status, e["error"]["code"].as_str()), (404, Some("not_found")));
        let (status, e) = get_json(&srv.url, "/api/v1/conversations/ses_missing").await;
        assert_eq!((status, e["error"]["code"].as_str()), (404, Some("session_not_found")));
    });
}

#[test]
fn a_card_talks_with_an_ad_hoc_personality() {
    let chars = tempfile::tempdir().unwrap();
    let card = Path::new(env!("CARGO_MANIFEST_DIR")).join("../chorus-engine/tests/data/characters/aria.v3.json");
    std::fs::copy(card, chars.path().join("aria.json")).unwrap();
    let srv = server(&["--characters-dir", chars.path().to_str().unwrap()]);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        let character = Participant { character: Some("aria".into()), name: None, personality: None, model: None };
        let request = ConversationRequest {
            participants: vec![adhoc("Bob", "A curious fish."), character, adhoc("Cy", "A gull.")],
            ..two(4, 6)
        };
        let events: Vec<_> = c.converse(&request).await.unwrap().collect().await;
        let Some(Ok(ConversationEvent::Done(done))) = events.last() else { panic!("{events:#?}") };
        assert_eq!(done.status, "completed", "{events:#?}");
        assert_eq!(done.participants, ["Bob", "Aria", "Cy"]);
        alternate(&done.exchanges, &["Bob", "Aria", "Cy"]);

        // A name given to a card is the name it speaks under; an unknown card names its field.
        let renamed =
            Participant { character: Some("Aria".into()), name: Some("Ria".into()), personality: None, model: None };
        let request =
            ConversationRequest { participants: vec![renamed, adhoc("Bob", "A fish.")], stream: false, ..two(1, 4) };
        let (status, body) = post(&srv.url, &serde_json::to_value(&request).unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(serde_json::from_str::<Conversation>(&body).unwrap().exchanges[0].speaker, "Ria");
        let missing = Participant { character: Some("nobody".into()), name: None, personality: None, model: None };
        let request = ConversationRequest { participants: vec![adhoc("Bob", "A fish."), missing], ..two(1, 4) };
        match c.converse(&request).await {
            Err(ClientError::Api { status: 400, message, .. }) => assert!(message.contains("nobody"), "{message}"),
            other => panic!("expected a 400, got {:?}", other.map(|_| ())),
        }
    });
}

#[test]
fn cancel_and_delete_stop_a_long_conversation() {
    let srv = server(&[]);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        // Cancel: the exchanges so far stay, the one in progress is dropped.
        let mut events = c.converse(&two(100, 1000)).await.unwrap();
        let Some(Ok(ConversationEvent::Started(started))) = events.next().await else { panic!("no start") };
        let Some(Ok(ConversationEvent::Exchange(first))) = events.next().await else { panic!("no exchange") };
        assert_eq!(first.speaker, "Ann");
        let (status, running) = get_json(&srv.url, &format!("/api/v1/conversations/{}", started.session_id)).await;
        assert_eq!((status, running["status"].as_str()), (200, Some("running")));
        assert!(c.cancel_conversation(&started.session_id).await.unwrap().cancelled);
        let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(120), events.collect::<Vec<_>>()).await.unwrap();
        let Some(Ok(ConversationEvent::Done(done))) = rest.last() else { panic!("{rest:#?}") };
        assert_eq!(done.status, "cancelled");
        assert!(done.exchanges.len() < 100, "{}", done.exchanges.len());
        let back = c.conversation(&started.session_id).await.unwrap();
        assert_eq!((back.status.as_str(), back.exchanges.len()), ("cancelled", done.exchanges.len()));
        assert_eq!(
            c.session(&started.session_id).await.unwrap().status,
            chorus_proto::native::SessionStatus::Cancelled
        );
        assert!(!c.cancel_conversation(&started.session_id).await.unwrap().cancelled, "it has ended");

        // Delete: the session goes, and so does its conversation.
        let mut events = c.converse(&two(100, 1000)).await.unwrap();
        let Some(Ok(ConversationEvent::Started(started))) = events.next().await else { panic!("no start") };
        c.delete_session(&started.session_id).await.unwrap();
        let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(120), events.collect::<Vec<_>>()).await.unwrap();
        let Some(Ok(ConversationEvent::Done(done))) = rest.last() else { panic!("{rest:#?}") };
        assert_eq!(done.status, "cancelled", "{rest:#?}");
        assert!(matches!(c.conversation(&started.session_id).await, Err(ClientError::Api { status: 404, .. })));
    });
}

#[test]
fn chorus_converse_prints_each_exchange() {
    let srv = server(&[]);
    let out = chorus(
        &[
            "converse",
            "--url",
            &srv.url,
            "--participant",
            "Ann: A retired sailor.",
            "--participant",
            "Bob: A curious fish.",
            "--turns",
            "6",
            "--max-tokens",
            "6",
            "the sea",
        ],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let session = stderr.split("session ").nth(1).and_then(|s| s.split_whitespace().next()).expect(&stderr).to_owned();
    let stdout = text(&out.stdout);
    runtime().block_on(async {
        let kept = stored(&srv.url, &session).await;
        assert_eq!(kept.len(), 6);
        let printed: Vec<String> = kept.iter().map(|(name, message)| format!("{name}: {}", message.trim())).collect();
        assert_eq!(stdout, format!("{}\n", printed.join("\n\n")));
        let speakers: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(speakers, ["Ann", "Bob", "Ann", "Bob", "Ann", "Bob"]);
    });

    // Usage errors say what to do, before any server is asked.
    let out = chorus(&["converse", "--url", &srv.url, "--participant", "Ann: a sailor", "the sea"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--participant \"NAME: PERSONALITY\""), "{}", text(&out.stderr));
    let out =
        chorus(&["converse", "--url", &srv.url, "--participant", "Ann a sailor", "--participant", "B: x", "t"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not \"NAME: PERSONALITY\""), "{}", text(&out.stderr));
    // A refusal of the server's names the field.
    let out = chorus(&["converse", "--url", &srv.url, "--participant", "Ann: a", "--participant", "ann: b", "t"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("two participants are named `ann`"), "{}", text(&out.stderr));
}

#[test]
fn bad_conversations_are_400_naming_the_field() {
    let srv = server(&[]);
    runtime().block_on(async {
        let ann = json!({"name": "Ann", "personality": "A sailor."});
        let cases = [
            (json!({"participants": [ann], "topic": "t"}), "participants"),
            (json!({"participants": [ann, {"name": "Bob", "personality": "x"}], "topic": "  "}), "topic"),
            (json!({"participants": [ann, {"name": "Bob"}], "topic": "t"}), "participants[1].personality"),
            (json!({"participants": [{"personality": "x"}, ann], "topic": "t"}), "participants[0].name"),
            (json!({"participants": [ann, {"name": "Bob", "personality": "x"}], "topic": "t", "turns": 0}), "turns"),
            (
                json!({"participants": [ann, {"name": "Bob", "personality": "x"}], "topic": "t", "max_tokens": 5000}),
                "max_tokens",
            ),
            (json!({"participants": [ann, {"character": "nobody"}], "topic": "t"}), "participants[1].character"),
        ];
        for (body, param) in cases {
            let (status, answer) = post(&srv.url, &body).await;
            assert_eq!(status, 400, "{body}: {answer}");
            let answer: Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(answer["error"]["param"], param, "{body}: {answer}");
            assert_eq!(answer["error"]["type"], "invalid_request_error");
        }
        let (status, answer) = post(&srv.url, &json!({"participants": "x", "topic": "t"})).await;
        assert_eq!(status, 400, "{answer}");
        let unknown_model =
            json!({"participants": [ann, {"name": "Bob", "personality": "x", "model": "nope"}], "topic": "t"});
        let (status, answer) = post(&srv.url, &unknown_model).await;
        assert_eq!(status, 404, "{answer}");
        // Nothing was started.
        let (_, sessions) = get_json(&srv.url, "/api/v1/sessions").await;
        assert_eq!(sessions["data"], json!([]));
    });
}
