//! The characters API on the tiny random-weight model (structure, not quality), with a
//! characters directory of the test's own: REST import of JSON and PNG cards, refused cards
//! naming the field at fault, list, the raw card, export round trips, delete, status, vitals,
//! a chat turn as JSON and as SSE, snapshots, memories, new instances; and the seed's
//! WebSocket protocol at `/ws/characters` with two clients on one character (each sees the
//! other's turns), requests before `init`, unknown types and bad JSON, the seed's flat form,
//! and the API key on `/ws/characters` and on `--character-port`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::ws_seed::{Socket, check_timestamp};
use crate::{runtime, server};

/// A card fixture.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../chorus-engine/tests/data/characters").join(name)
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// A server on the tiny model whose characters directory is `dir`.
fn characters_server(dir: &Path, extra: &[&str]) -> chorus_testkit::server::TestServer {
    let mut args = vec!["--characters-dir", dir.to_str().expect("utf-8 temp path")];
    args.extend_from_slice(extra);
    server(&args)
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

/// `error.param` and `error.code` of an error answer with status `want`.
fn error_of(answer: &(StatusCode, Value), want: StatusCode) -> (Value, Value) {
    assert_eq!(answer.0, want, "{}", answer.1);
    let error = &answer.1["error"];
    assert!(error["message"].is_string() && error["type"].is_string(), "{}", answer.1);
    (error["param"].clone(), error["code"].clone())
}

async fn import(
    http: &reqwest::Client,
    url: &str,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let response = http
        .post(format!("{url}/api/v1/characters{query}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

#[test]
fn cards_over_rest_import_list_export_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = characters_server(&tmp.path().join("characters"), &[]);
    let url = srv.url.clone();
    let http = reqwest::Client::new();
    runtime().block_on(async {
        let (status, list) = json_of(http.get(format!("{url}/api/v1/characters")).send().await.unwrap()).await;
        assert_eq!((status, list), (StatusCode::OK, json!({"object": "list", "data": []})));
        // The document describes the routes, and the WebSocket's frames.
        let (_, doc) = json_of(http.get(format!("{url}/openapi.json")).send().await.unwrap()).await;
        assert_eq!(doc["paths"]["/api/v1/characters"]["post"]["operationId"], "importCharacter");
        assert!(doc["components"]["schemas"]["CharacterWsResponse"].is_object());

        // A V3 card as JSON, a V2 card as PNG.
        let aria = std::fs::read(fixture("aria.v3.json")).unwrap();
        let (status, summary) = import(&http, &url, "", "application/json", aria).await;
        assert_eq!(status, StatusCode::CREATED, "{summary}");
        assert_eq!(
            (&summary["id"], &summary["name"], &summary["spec"]),
            (&json!("aria"), &json!("Aria"), &json!("chara_card_v3"))
        );
        assert_eq!(summary["vitals"], json!(["mood", "trust", "energy"]));
        let bram_png = std::fs::read(fixture("bram.v2.png")).unwrap();
        let (status, summary) = import(&http, &url, "", "image/png", bram_png.clone()).await;
        assert_eq!(
            (status, &summary["id"], &summary["spec"]),
            (StatusCode::CREATED, &json!("bram"), &json!("chara_card_v2"))
        );

        // A taken id is a conflict unless replaced; octet-stream is sniffed.
        let taken = import(&http, &url, "?id=bram", "application/octet-stream", bram_png.clone()).await;
        assert_eq!(error_of(&taken, StatusCode::CONFLICT).1, "character_exists");
        let replaced = import(&http, &url, "?id=bram&replace=true", "application/octet-stream", bram_png).await;
        assert_eq!((replaced.0, &replaced.1["id"]), (StatusCode::CREATED, &json!("bram")));

        // Refused cards name the field at fault, in `param` and in the message.
        for (file, field) in [
            ("bad/missing-name.json", "data.name"),
            ("bad/entry-keys-not-array.json", "data.character_book.entries[2].keys"),
            ("bad/vitals-bounds.json", "data.extensions.chorus.vitals[0].default"),
        ] {
            let answer = import(&http, &url, "", "application/json", std::fs::read(fixture(file)).unwrap()).await;
            let (param, code) = error_of(&answer, StatusCode::BAD_REQUEST);
            assert_eq!((param, code), (json!(field), json!("invalid_card")), "{file}");
            let message = answer.1["error"]["message"].as_str().unwrap();
            assert!(message.contains(field), "{file}: {message}");
        }
        let junk = import(&http, &url, "", "application/json", b"hello".to_vec()).await;
        assert_eq!(error_of(&junk, StatusCode::BAD_REQUEST).1, "invalid_card");
        let empty = import(&http, &url, "", "application/json", Vec::new()).await;
        error_of(&empty, StatusCode::BAD_REQUEST);
        let aria = std::fs::read(fixture("aria.v3.json")).unwrap();
        let bad_id = import(&http, &url, "?id=Not%20An%20Id", "application/json", aria).await;
        assert_eq!(error_of(&bad_id, StatusCode::BAD_REQUEST).0, "id");

        let (_, list) = json_of(http.get(format!("{url}/api/v1/characters")).send().await.unwrap()).await;
        let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["aria", "bram"]);

        // The raw card, by id and by name; the JSON export is the imported JSON.
        let (status, card) = json_of(http.get(format!("{url}/api/v1/characters/aria")).send().await.unwrap()).await;
        assert_eq!((status, &card), (StatusCode::OK, &fixture_json("aria.v3.json")));
        let (_, by_name) = json_of(http.get(format!("{url}/api/v1/characters/Aria")).send().await.unwrap()).await;
        assert_eq!(by_name, card);
        let export = http.get(format!("{url}/api/v1/characters/aria/export?format=json")).send().await.unwrap();
        assert_eq!(export.headers()["content-type"], "application/json");
        assert_eq!(export.headers()["content-disposition"], "attachment; filename=\"aria.json\"");
        let exported: Value = serde_json::from_slice(&export.bytes().await.unwrap()).unwrap();
        assert_eq!(exported, fixture_json("aria.v3.json"));

        // A PNG export imports again to the same card.
        let export = http.get(format!("{url}/api/v1/characters/bram/export?format=png")).send().await.unwrap();
        assert_eq!(export.status(), StatusCode::OK);
        assert_eq!(export.headers()["content-type"], "image/png");
        assert_eq!(export.headers()["content-disposition"], "attachment; filename=\"bram.png\"");
        let png = export.bytes().await.unwrap().to_vec();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let copy = import(&http, &url, "?id=bram-copy", "image/png", png).await;
        assert_eq!(copy.0, StatusCode::CREATED, "{}", copy.1);
        let (_, bram) = json_of(http.get(format!("{url}/api/v1/characters/bram")).send().await.unwrap()).await;
        let (_, bram_copy) =
            json_of(http.get(format!("{url}/api/v1/characters/bram-copy")).send().await.unwrap()).await;
        assert_eq!(bram_copy, bram);
        let charx = http.get(format!("{url}/api/v1/characters/bram/export?format=charx")).send().await.unwrap();
        assert_eq!(
            (charx.status(), &charx.headers()["content-type"]),
            (StatusCode::OK, &HeaderValue::from_static("application/zip"))
        );
        assert!(charx.bytes().await.unwrap().starts_with(b"PK"));
        let gif =
            json_of(http.get(format!("{url}/api/v1/characters/bram/export?format=gif")).send().await.unwrap()).await;
        assert_eq!(error_of(&gif, StatusCode::BAD_REQUEST).0, "format");

        // Delete; then it is gone.
        let deleted = http.delete(format!("{url}/api/v1/characters/bram-copy")).send().await.unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let gone = json_of(http.get(format!("{url}/api/v1/characters/bram-copy")).send().await.unwrap()).await;
        assert_eq!(error_of(&gone, StatusCode::NOT_FOUND).1, "character_not_found");
        let gone = json_of(http.delete(format!("{url}/api/v1/characters/bram-copy")).send().await.unwrap()).await;
        assert_eq!(error_of(&gone, StatusCode::NOT_FOUND).1, "character_not_found");
    });
}

/// The `(event, data)` pairs of an SSE body.
fn sse_events(body: &str) -> Vec<(String, String)> {
    let mut events = Vec::new();
    for block in body.split("\n\n") {
        let (mut event, mut data) = (String::new(), String::new());
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
            }
        }
        if !data.is_empty() {
            events.push((event, data));
        }
    }
    events
}

#[test]
fn a_character_over_rest_chat_vitals_snapshots_memories() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = characters_server(&tmp.path().join("characters"), &[]);
    let url = srv.url.clone();
    let http = reqwest::Client::new();
    let base = format!("{url}/api/v1/characters/aria");
    runtime().block_on(async {
        let aria = std::fs::read(fixture("aria.v3.json")).unwrap();
        assert_eq!(import(&http, &url, "", "application/json", aria).await.0, StatusCode::CREATED);
        let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();

        // The shared session starts with the greeting and the card's initial vitals.
        let (status, st) = json_of(http.get(format!("{base}/status?user_name=Tess")).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{st}");
        assert_eq!((&st["character"], &st["name"], &st["user"]), (&json!("aria"), &json!("Aria"), &json!("Tess")));
        assert_eq!((&st["turns"], &st["message_count"]), (&json!(0), &json!(1)));
        assert_eq!(st["vitals"], json!({"mood": "cheerful", "trust": 50, "energy": 80}));
        let shared = st["session_id"].as_str().unwrap().to_owned();

        // Vitals by hand; refused values and unknown vitals name the field.
        let set = |name: &str, body: Value| http.put(format!("{base}/vitals/{name}")).json(&body).send();
        let (status, st) = json_of(set("mood", json!({"value": "calm"})).await.unwrap()).await;
        assert_eq!((status, &st["vitals"]["mood"]), (StatusCode::OK, &json!("calm")));
        assert_eq!(st["recent_changes"][0]["source"], "api");
        let refused = json_of(set("mood", json!({"value": "furious"})).await.unwrap()).await;
        assert_eq!(error_of(&refused, StatusCode::BAD_REQUEST).0, "value");
        let unknown = json_of(set("hunger", json!({"value": 3})).await.unwrap()).await;
        assert_eq!(error_of(&unknown, StatusCode::BAD_REQUEST).0, "name");

        // Bad chat bodies: blank message, unknown field, not JSON.
        let blank = json_of(post("/chat", json!({"message": "  "})).await.unwrap()).await;
        assert_eq!(error_of(&blank, StatusCode::BAD_REQUEST).0, "message");
        let unknown = json_of(post("/chat", json!({"message": "hi", "mood": "x"})).await.unwrap()).await;
        error_of(&unknown, StatusCode::BAD_REQUEST);
        let not_json = http.post(format!("{base}/chat")).header("content-type", "application/json").body("{hi").send();
        error_of(&json_of(not_json.await.unwrap()).await, StatusCode::BAD_REQUEST);
        let nobody = json_of(
            http.post(format!("{url}/api/v1/characters/nobody/chat"))
                .json(&json!({"message": "hi"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(error_of(&nobody, StatusCode::NOT_FOUND).1, "character_not_found");

        // A turn as JSON.
        let (status, turn) = json_of(
            post("/chat", json!({"message": "Hello there", "user_name": "Tess", "max_tokens": 8})).await.unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{turn}");
        assert_eq!((&turn["session_id"], &turn["message"]["role"]), (&json!(shared), &json!("assistant")));
        assert_eq!(turn["message"]["metadata"]["name"], "Aria");
        let vitals = turn["vitals"].as_object().unwrap();
        assert!(["mood", "trust", "energy"].iter().all(|k| vitals.contains_key(*k)), "{turn}");
        assert!(turn["changes"].as_array().unwrap().iter().all(|c| c["turn"] == 1), "{turn}");
        assert!(turn["memories_used"].is_array(), "{turn}");

        // A turn as SSE: the prompt's events, then `character.updated`, then `[DONE]`.
        let response =
            post("/chat", json!({"message": "And now?", "user_name": "Tess", "max_tokens": 8, "stream": true}))
                .await
                .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let events = sse_events(&response.text().await.unwrap());
        let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
        let complete = kinds.iter().position(|k| *k == "message.complete").unwrap_or_else(|| panic!("{kinds:?}"));
        let updated = kinds.iter().position(|k| *k == "character.updated").unwrap_or_else(|| panic!("{kinds:?}"));
        assert!(kinds[0] == "message.start" && complete < updated && updated + 2 == events.len(), "{kinds:?}");
        assert_eq!(events.last().unwrap().1, "[DONE]");
        let update: Value = serde_json::from_str(&events[updated].1).unwrap();
        assert_eq!(
            (&update["session_id"], &update["character"], &update["turn"]),
            (&json!(shared), &json!("aria"), &json!(2))
        );

        let (_, st) = json_of(http.get(format!("{base}/status?user_name=Tess")).send().await.unwrap()).await;
        assert_eq!((&st["turns"], &st["message_count"]), (&json!(2), &json!(5)));

        // Memories: one per turn; edit and forget.
        let (status, memories) = json_of(http.get(format!("{base}/memories")).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{memories}");
        let list = memories["data"].as_array().unwrap();
        assert_eq!(list.len(), st["memory_count"].as_u64().unwrap() as usize);
        assert!(!list.is_empty(), "{memories}");
        let memory = list[0]["id"].as_str().unwrap().to_owned();
        let edit = http.patch(format!("{base}/memories/{memory}")).json(&json!({"importance": 7})).send();
        let (status, edited) = json_of(edit.await.unwrap()).await;
        assert_eq!((status, &edited["id"], &edited["importance"]), (StatusCode::OK, &json!(memory), &json!(7)));
        let bad = http.patch(format!("{base}/memories/{memory}")).json(&json!({"importance": 11})).send();
        assert_eq!(error_of(&json_of(bad.await.unwrap()).await, StatusCode::BAD_REQUEST).0, "importance");
        let search = json_of(post("/memories/search", json!({"query": "hello", "limit": 3})).await.unwrap()).await;
        match search.0 {
            // With an embedding model: scored results.
            StatusCode::OK => assert!(search.1["data"].as_array().unwrap().iter().all(|m| m["score"].is_number())),
            // The tiny model may embed nothing: said in OpenAI's format.
            _ => drop(error_of(&search, StatusCode::BAD_REQUEST)),
        }
        let empty = json_of(post("/memories/search", json!({"query": " "})).await.unwrap()).await;
        assert_eq!(error_of(&empty, StatusCode::BAD_REQUEST).0, "query");
        let forget = http.delete(format!("{base}/memories/{memory}")).send().await.unwrap();
        assert_eq!(forget.status(), StatusCode::NO_CONTENT);
        let again = json_of(http.delete(format!("{base}/memories/{memory}")).send().await.unwrap()).await;
        assert_eq!(error_of(&again, StatusCode::NOT_FOUND).1, "memory_not_found");

        // Snapshots: save, list, export, reset, load.
        let (status, saved) = json_of(post("/save", json!({"name": "after-two"})).await.unwrap()).await;
        assert_eq!((status, &saved["name"]), (StatusCode::OK, &json!("after-two")));
        assert!(saved["created_at"].as_i64().unwrap() > 0);
        let bad_name = json_of(post("/save", json!({"name": "no spaces"})).await.unwrap()).await;
        assert_eq!(error_of(&bad_name, StatusCode::BAD_REQUEST).0, "name");
        let (_, list) = json_of(http.get(format!("{base}/snapshots")).send().await.unwrap()).await;
        assert_eq!((&list["session_id"], &list["data"][0]["name"]), (&json!(shared), &json!("after-two")));
        let export = http.get(format!("{base}/snapshots/after-two")).send().await.unwrap();
        assert_eq!(export.headers()["content-disposition"], "attachment; filename=\"aria.after-two.snapshot.json\"");
        let (status, document) = json_of(export).await;
        assert_eq!((status, &document["character"], &document["turns"]), (StatusCode::OK, &json!("aria"), &json!(2)));
        let missing = json_of(http.get(format!("{base}/snapshots/nope")).send().await.unwrap()).await;
        assert_eq!(error_of(&missing, StatusCode::NOT_FOUND).1, "snapshot_not_found");

        let reset = http.post(format!("{base}/reset")).send().await.unwrap();
        let (status, st) = json_of(reset).await;
        assert_eq!(
            (status, &st["turns"], &st["message_count"], &st["memory_count"]),
            (StatusCode::OK, &json!(0), &json!(1), &json!(0))
        );
        assert_eq!(st["vitals"]["mood"], "cheerful");
        assert_eq!(st["snapshots"], json!(["after-two"]));
        let (status, st) = json_of(post("/load", json!({"name": "after-two"})).await.unwrap()).await;
        assert_eq!((status, &st["turns"], &st["message_count"]), (StatusCode::OK, &json!(2), &json!(5)));
        let missing = json_of(post("/load", json!({"name": "nope"})).await.unwrap()).await;
        assert_eq!(error_of(&missing, StatusCode::NOT_FOUND).1, "snapshot_not_found");

        // A new instance, apart from the shared session.
        let (status, session) = json_of(post("/sessions", json!({"user_name": "Sam"})).await.unwrap()).await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        let instance = session["id"].as_str().unwrap().to_owned();
        assert!(instance.starts_with("ses_") && instance != shared, "{session}");
        let (_, st) = json_of(http.get(format!("{base}/status?session_id={instance}")).send().await.unwrap()).await;
        assert_eq!((&st["session_id"], &st["turns"], &st["message_count"]), (&json!(instance), &json!(0), &json!(1)));
        // A session that plays no character is refused.
        let (_, plain) = json_of(http.post(format!("{url}/api/v1/sessions")).send().await.unwrap()).await;
        let plain = plain["id"].as_str().unwrap();
        let wrong = json_of(http.get(format!("{base}/status?session_id={plain}")).send().await.unwrap()).await;
        assert_eq!(error_of(&wrong, StatusCode::BAD_REQUEST).0, "session_id");
    });
}

async fn connect(url: &str) -> Socket {
    let ws_url = format!("{}/ws/characters", url.replacen("http://", "ws://", 1));
    tokio_tungstenite::connect_async(ws_url).await.expect("websocket handshake").0
}

async fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::Text(frame.to_string().into())).await.expect("send");
}

/// The next frame, as JSON, stamped with an RFC 3339 timestamp.
async fn recv(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("a frame within 60 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
            check_timestamp(&frame);
            return frame;
        }
    }
}

/// Frames until the response to `request_id` (included).
async fn until_response(socket: &mut Socket, request_id: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = recv(socket).await;
        let done = frame["request_id"] == request_id && frame["type"].as_str().unwrap().ends_with("_response");
        seen.push(frame);
        if done {
            return seen;
        }
    }
}

/// Frames until one of type `kind` whose `data.message.role` is `role` when given (included).
async fn until_frame(socket: &mut Socket, kind: &str, role: Option<&str>) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = recv(socket).await;
        let done = frame["type"] == kind && role.is_none_or(|r| frame["data"]["message"]["role"] == r);
        seen.push(frame);
        if done {
            return seen;
        }
    }
}

/// A request answered: its response frame's data, checked to be a success of the right type.
async fn ok(socket: &mut Socket, kind: &str, request_id: &str, data: Value) -> Value {
    send(socket, json!({"type": format!("{kind}_request"), "request_id": request_id, "data": data})).await;
    let response = until_response(socket, request_id).await.pop().unwrap();
    assert_eq!(
        (&response["type"], &response["success"]),
        (&json!(format!("{kind}_response")), &json!(true)),
        "{response}"
    );
    assert!(response["error"].is_null(), "{response}");
    response["data"].clone()
}

fn types(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["type"].as_str().unwrap()).collect()
}

#[test]
fn two_clients_on_one_character_over_the_seeds_websocket() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = characters_server(&tmp.path().join("characters"), &[]);
    let url = srv.url.clone();
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let aria = std::fs::read(fixture("aria.v3.json")).unwrap();
        assert_eq!(import(&http, &url, "", "application/json", aria).await.0, StatusCode::CREATED);
        let (mut a, mut b) = (connect(&url).await, connect(&url).await);

        // Before init: ping works, the rest is refused; bad frames are answered, the socket stays.
        let pong = ok(&mut a, "ping", "p1", json!({})).await;
        assert_eq!(pong["pong"], true);
        assert!(pong["server_time"].as_str().is_some_and(|t| t.ends_with('Z')), "{pong}");
        send(&mut a, json!({"type": "status_request", "request_id": "s0"})).await;
        let refused = recv(&mut a).await;
        assert_eq!(
            (&refused["type"], &refused["request_id"], &refused["success"]),
            (&json!("status_response"), &json!("s0"), &json!(false))
        );
        assert_eq!((&refused["error"]["code"], &refused["data"]), (&json!("not_initialized"), &Value::Null));
        a.send(Message::Text("{not json".into())).await.unwrap();
        let bad = recv(&mut a).await;
        assert_eq!(
            (&bad["type"], &bad["success"], &bad["error"]["code"]),
            (&json!("error_response"), &json!(false), &json!("invalid_json"))
        );
        assert!(bad["request_id"].is_null());
        send(&mut a, json!({"type": "fly_request", "request_id": "f1"})).await;
        let unknown = recv(&mut a).await;
        assert_eq!(
            (&unknown["type"], &unknown["request_id"], &unknown["error"]["code"]),
            (&json!("error_response"), &json!("f1"), &json!("unknown_request"))
        );
        let missing = {
            send(&mut a, json!({"type": "init_request", "request_id": "i0", "data": {"character": "nobody"}})).await;
            recv(&mut a).await
        };
        assert_eq!((&missing["success"], &missing["error"]["code"]), (&json!(false), &json!("character_not_found")));

        // A attaches with `data`, B with the seed's flat form and the card's name.
        let init_a = ok(&mut a, "init", "i1", json!({"character": "aria", "user_name": "Tess"})).await;
        assert_eq!(
            (&init_a["character"], &init_a["name"], &init_a["user"]),
            (&json!("aria"), &json!("Aria"), &json!("Tess"))
        );
        let greeting = init_a["messages"].as_array().unwrap();
        assert_eq!((greeting.len(), &greeting[0]["role"]), (1, &json!("assistant")));
        assert_eq!(init_a["status"]["vitals"]["trust"], 50);
        send(&mut b, json!({"type": "init_request", "request_id": "i2", "character": "Aria", "user_name": "Sam"}))
            .await;
        let init_b = until_response(&mut b, "i2").await.pop().unwrap();
        assert_eq!(init_b["success"], true, "{init_b}");
        assert_eq!((&init_b["data"]["session_id"], &init_b["data"]["user"]), (&init_a["session_id"], &json!("Sam")));
        let session = init_a["session_id"].clone();

        // A's turn; a ping sent meanwhile is answered too.
        send(
            &mut a,
            json!({"type": "chat_request", "request_id": "c1", "data": {"message": "Hello, Aria", "max_tokens": 8}}),
        )
        .await;
        send(&mut a, json!({"type": "ping_request", "request_id": "p2"})).await;
        let mut seen_a = until_response(&mut a, "c1").await;
        if !seen_a.iter().any(|f| f["request_id"] == "p2") {
            seen_a.extend(until_response(&mut a, "p2").await);
        }
        let response = seen_a.iter().find(|f| f["type"] == "chat_response").unwrap();
        assert_eq!(response["success"], true, "{response}");
        let answer = &response["data"];
        assert_eq!((&answer["session_id"], &answer["message"]["role"]), (&session, &json!("assistant")));
        assert!(answer["vitals"].as_object().unwrap().contains_key("trust"), "{answer}");
        // A saw its own turn: the user's message, its chunks under its request id, the answer, the
        // vitals, then the response.
        let kinds = types(&seen_a);
        let user_at =
            seen_a.iter().position(|f| f["type"] == "chat_message" && f["data"]["message"]["role"] == "user").unwrap();
        let answer_at = seen_a
            .iter()
            .position(|f| f["type"] == "chat_message" && f["data"]["message"]["role"] == "assistant")
            .unwrap();
        let vitals_at = kinds.iter().position(|k| *k == "vitals_update").unwrap_or_else(|| panic!("{kinds:?}"));
        let response_at = kinds.iter().position(|k| *k == "chat_response").unwrap();
        assert!(user_at < answer_at && answer_at < vitals_at && vitals_at < response_at, "{kinds:?}");
        assert_eq!(seen_a[user_at]["data"]["message"]["content"], "Hello, Aria");
        assert_eq!(seen_a[answer_at]["data"]["message"], answer["message"]);
        assert!(seen_a.iter().filter(|f| f["type"] == "chat_chunk").all(|f| f["request_id"] == "c1"), "{seen_a:#?}");
        assert_eq!(seen_a[vitals_at]["data"]["type"], "character.updated");

        // B saw A's turn: the user's message (named Tess), chunks under no request id, the answer.
        let seen_b = until_frame(&mut b, "vitals_update", None).await;
        let user =
            seen_b.iter().find(|f| f["type"] == "chat_message" && f["data"]["message"]["role"] == "user").unwrap();
        assert_eq!(
            (&user["data"]["message"]["content"], &user["data"]["message"]["metadata"]["name"]),
            (&json!("Hello, Aria"), &json!("Tess"))
        );
        assert_eq!(user["data"]["session_id"], session);
        let answer_b =
            seen_b.iter().find(|f| f["type"] == "chat_message" && f["data"]["message"]["role"] == "assistant").unwrap();
        assert_eq!(answer_b["data"]["message"], answer["message"]);
        assert!(seen_b.iter().filter(|f| f["type"] == "chat_chunk").all(|f| f["request_id"].is_null()), "{seen_b:#?}");

        // B's own turn (a flat chat), which A sees.
        send(&mut b, json!({"type": "chat_request", "request_id": "c2", "message": "Hi from Sam", "max_tokens": 8}))
            .await;
        let seen = until_response(&mut b, "c2").await;
        assert_eq!(seen.last().unwrap()["success"], true, "{seen:#?}");
        let from_sam = until_frame(&mut a, "chat_message", Some("user")).await.pop().unwrap();
        assert_eq!(
            (&from_sam["data"]["message"]["content"], &from_sam["request_id"]),
            (&json!("Hi from Sam"), &Value::Null)
        );
        until_frame(&mut a, "vitals_update", None).await;

        // Status per user; errors of a request answer it without closing the socket.
        let status = ok(&mut b, "status", "s1", json!({})).await;
        assert_eq!((&status["user"], &status["turns"], &status["session_id"]), (&json!("Sam"), &json!(2), &session));
        send(&mut b, json!({"type": "chat_request", "request_id": "c3", "data": {"message": "   "}})).await;
        let blank = until_response(&mut b, "c3").await.pop().unwrap();
        assert_eq!((&blank["success"], &blank["error"]["param"]), (&json!(false), &json!("data.message")));
        send(&mut b, json!({"type": "save_request", "request_id": "v0", "data": {}})).await;
        let nameless = until_response(&mut b, "v0").await.pop().unwrap();
        assert_eq!((&nameless["success"], &nameless["error"]["param"]), (&json!(false), &json!("data.name")));

        // Memory search: Sam's own memory is his turn; the answer is a list, or (with no
        // embedding model on the tiny server) an error that says so.
        send(
            &mut b,
            json!({"type": "memory_search_request", "request_id": "m1", "data": {"query": "hello", "limit": 3}}),
        )
        .await;
        let search = until_response(&mut b, "m1").await.pop().unwrap();
        if search["success"] == true {
            assert!(search["data"]["results"].is_array(), "{search}");
        } else {
            assert!(search["error"]["message"].is_string(), "{search}");
        }

        // Save, reset (both clients hear of it), load.
        let saved = ok(&mut a, "save", "v1", json!({"name": "two-turns"})).await;
        assert_eq!(saved["name"], "two-turns");
        let reset = ok(&mut a, "reset", "r1", json!({})).await;
        assert_eq!((&reset["turns"], &reset["message_count"]), (&json!(0), &json!(1)));
        let restored = until_frame(&mut b, "character_restored", None).await.pop().unwrap();
        assert_eq!((&restored["data"]["session_id"], &restored["data"]["character"]), (&session, &json!("aria")));
        let loaded = ok(&mut a, "load", "l1", json!({"name": "two-turns"})).await;
        assert_eq!((&loaded["turns"], &loaded["message_count"]), (&json!(2), &json!(5)));
        let restored = until_frame(&mut b, "character_restored", None).await.pop().unwrap();
        assert_eq!(restored["data"]["snapshot"], "two-turns");
        send(&mut a, json!({"type": "load_request", "request_id": "l2", "data": {"name": "nope"}})).await;
        let missing = until_response(&mut a, "l2").await.pop().unwrap();
        assert_eq!((&missing["success"], &missing["error"]["code"]), (&json!(false), &json!("snapshot_not_found")));

        // A second init re-attaches, with the transcript as it is now.
        let again = ok(&mut a, "init", "i3", json!({"character": "aria", "user_name": "Tess"})).await;
        assert_eq!(again["messages"].as_array().unwrap().len(), 5);
    });
}

/// A handshake with `Authorization: Bearer KEY` or the subprotocols `chorus, bearer.B64`.
async fn handshake(
    ws_url: &str,
    header: Option<&str>,
    subprotocol: Option<&str>,
) -> Result<(Socket, Option<String>), u16> {
    let mut request = ws_url.into_client_request().unwrap();
    if let Some(key) = header {
        request.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {key}")).unwrap());
    }
    if let Some(key) = subprotocol {
        let protocols = format!("chorus, bearer.{}", URL_SAFE_NO_PAD.encode(key));
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&protocols).unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            Ok((socket, response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_owned())))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("handshake failed without an HTTP answer: {e}"),
    }
}

#[test]
fn the_characters_websocket_needs_the_key_on_both_ports() {
    let tmp = tempfile::tempdir().unwrap();
    // A free port for --character-port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port = port.to_string();
    let srv = characters_server(&tmp.path().join("characters"), &["--api-key", "sesame", "--character-port", &port]);
    runtime().block_on(async {
        let main = format!("{}/ws/characters", srv.url.replacen("http://", "ws://", 1));
        assert_eq!(handshake(&main, None, None).await.err(), Some(401));
        assert_eq!(handshake(&main, Some("wrong"), None).await.err(), Some(401));
        let (mut socket, protocol) = handshake(&main, Some("sesame"), None).await.unwrap();
        assert_eq!(protocol, None, "a plain client gets no subprotocol");
        assert_eq!(ok(&mut socket, "ping", "p", json!({})).await["pong"], true);
        let (mut socket, protocol) = handshake(&main, None, Some("sesame")).await.unwrap();
        assert_eq!(protocol.as_deref(), Some("chorus"));
        assert_eq!(ok(&mut socket, "ping", "p", json!({})).await["pong"], true);

        // The seed's port serves the same protocol at `/` and `/ws/characters`, behind the same key.
        for path in ["/", "/ws/characters"] {
            let url = format!("ws://127.0.0.1:{port}{path}");
            assert_eq!(handshake(&url, None, None).await.err(), Some(401), "{url}");
            let (mut socket, _) = handshake(&url, Some("sesame"), None).await.unwrap();
            assert_eq!(ok(&mut socket, "ping", "p", json!({})).await["pong"], true);
            send(&mut socket, json!({"type": "status_request", "request_id": "s"})).await;
            assert_eq!(recv(&mut socket).await["error"]["code"], "not_initialized");
        }
    });
}
