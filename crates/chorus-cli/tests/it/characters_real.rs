//! Characters on the real `qwen-coder` fixture with the real `minilm` embeddings, through the
//! real server as a user would drive it: the REST API, the seed's WebSocket protocol and the
//! CLI. What is checked is what the issue promises: lorebook entries only within
//! `scan_depth`, vitals that move within their bounds, a memory of turn 2 that answers turn 20
//! after it left the window, save / load / reset, two clients on one character, the CLI's
//! fallback to local mode, a conversation between two cards, and turns served from the KV
//! cache (also after a restart).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chorus_testkit::server::TestServer;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::real_model::{fixture, one_at_a_time};
use crate::{bin, runtime};

fn cards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../chorus-engine/tests/data/characters")
}

/// `chorus serve` on qwen-coder with minilm for memories, plus `extra`.
fn server(extra: &[&str]) -> Option<(TestServer, std::sync::MutexGuard<'static, ()>)> {
    let qwen = fixture("CHORUS_QWEN_CODER")?;
    let minilm = std::env::var_os("CHORUS_MINILM").map(PathBuf::from).filter(|p| p.is_dir());
    let Some(minilm) = minilm else {
        assert!(std::env::var_os("CI").is_none(), "CHORUS_MINILM must be set under CI");
        eprintln!("skipped: CHORUS_MINILM is not set");
        return None;
    };
    let guard = one_at_a_time();
    let mut args = vec!["--model", qwen.to_str().unwrap(), "--model", minilm.to_str().unwrap()];
    args.extend_from_slice(extra);
    Some((TestServer::start(bin(), &args), guard))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(600)).build().unwrap()
}

async fn import(url: &str, file: &str, content_type: &str) -> Value {
    let body = std::fs::read(cards().join(file)).unwrap();
    let r = http()
        .post(format!("{url}/api/v1/characters"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "importing {file}");
    r.json().await.unwrap()
}

async fn chat(url: &str, character: &str, message: &str, user: &str, max_tokens: u32) -> Value {
    let body = json!({"message": message, "user_name": user, "max_tokens": max_tokens});
    let r = http().post(format!("{url}/api/v1/characters/{character}/chat")).json(&body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

async fn get(url: &str) -> Value {
    let r = http().get(url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

async fn post(url: &str, body: Value) -> Value {
    let r = http().post(url).json(&body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

/// The transcript of a session: (role, content).
async fn transcript(url: &str, session: &str) -> Vec<(String, String)> {
    let list = get(&format!("{url}/api/v1/sessions/{session}/messages")).await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned()))
        .collect()
}

fn lore(answer: &Value) -> Vec<String> {
    answer["message"]["metadata"]["lore"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn check_bounds(vitals: &Value) {
    let trust = vitals["trust"].as_f64().unwrap();
    let energy = vitals["energy"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&trust) && (0.0..=100.0).contains(&energy), "{vitals}");
    assert!(["cheerful", "calm", "worried", "annoyed"].contains(&vitals["mood"].as_str().unwrap()), "{vitals}");
}

const COVE: &str = "The smugglers' cove";

#[test]
fn a_character_keeps_its_lore_vitals_and_snapshots_over_turns() {
    let Some((srv, _guard)) = server(&[]) else { return };
    runtime().block_on(async {
        let url = &srv.url;
        let summary = import(url, "aria.v3.json", "application/json").await;
        assert_eq!(summary["id"], "aria");

        // The cove's entry is in a turn's prompt exactly when "Marrow Bay" is in its last two
        // messages (checked against the transcript below); the constant entry is always in.
        let questions = [
            "Hello! I'm Sam. What a climb. Is the tea really that strong?",
            "What do you do up here all night?",
            "I heard odd stories about Marrow Bay. Have you been to its northern cliffs?",
            "Tell me about the brass lamp.",
            "Do you like living alone up here?",
        ];
        let mut answers = Vec::new();
        for (i, q) in questions.iter().enumerate() {
            let answer = chat(url, "aria", q, "Sam", 40).await;
            let text = answer["message"]["content"].as_str().unwrap();
            assert!(!text.trim().is_empty(), "turn {} answered nothing", i + 1);
            check_bounds(&answer["vitals"]);
            assert!(lore(&answer).contains(&"The lighthouse".to_owned()), "the constant entry: {answer}");
            answers.push(answer);
        }
        let session = answers[0]["session_id"].as_str().unwrap().to_owned();
        let messages = transcript(url, &session).await;
        // The greeting, then a user message and an answer per turn.
        assert_eq!(messages.len(), 1 + 2 * questions.len(), "{messages:?}");
        for (turn, answer) in answers.iter().enumerate() {
            // What the scan saw: the message before the turn's user message, and that message.
            let user_at = 1 + 2 * turn;
            let scanned = format!("{} {}", messages[user_at - 1].1, messages[user_at].1).to_lowercase();
            let active = lore(answer).contains(&COVE.to_owned());
            assert_eq!(
                active,
                scanned.contains("marrow bay"),
                "turn {}: the cove's entry must be in the prompt exactly when its key is within scan_depth 2 \
                 (lore {:?}, scanned {scanned:?})",
                turn + 1,
                lore(answer)
            );
        }
        assert!(lore(&answers[2]).contains(&COVE.to_owned()), "turn 3 names Marrow Bay");

        // The second turn reused the first one's prefix from the slot's KV cache.
        let cached = answers[1]["message"]["usage"]["cached_tokens"].as_u64().unwrap();
        assert!(cached > 100, "turn 2 should reuse the system prompt and turn 1: {}", answers[1]["message"]["usage"]);

        // Vitals: energy falls by one a turn; every value stays within its bounds; the
        // history says what changed them.
        let status = get(&format!("{url}/api/v1/characters/aria/status?user_name=Sam")).await;
        assert_eq!(status["turns"], 5);
        check_bounds(&status["vitals"]);
        let changes = status["recent_changes"].as_array().unwrap();
        let decays = changes
            .iter()
            .filter(|c| c["name"] == "energy" && c["source"] == "decay")
            .map(|c| c["old_value"].as_f64().unwrap() - c["new_value"].as_f64().unwrap())
            .collect::<Vec<_>>();
        assert_eq!(decays, [1.0; 5], "energy fell by one after each turn: {status}");
        for c in changes {
            if c["name"] != "mood" {
                let v = c["new_value"].as_f64().unwrap();
                assert!((0.0..=100.0).contains(&v), "{c}");
            }
        }
        assert!(status["memory_count"].as_u64().unwrap() >= 1, "{status}");
        eprintln!("status after 5 turns: {}", status["vitals"]);

        // save → more turns → load restores vitals, memories and transcript; reset.
        post(&format!("{url}/api/v1/characters/aria/save"), json!({"name": "five"})).await;
        let saved_messages = transcript(url, &session).await;
        let saved_memories = get(&format!("{url}/api/v1/characters/aria/memories")).await;
        for q in ["Can I see the lens?", "Thanks for the tea!"] {
            chat(url, "aria", q, "Sam", 24).await;
        }
        assert_eq!(get(&format!("{url}/api/v1/characters/aria/status")).await["turns"], 7);
        let loaded = post(&format!("{url}/api/v1/characters/aria/load"), json!({"name": "five"})).await;
        assert_eq!(loaded["turns"], 5);
        let after = get(&format!("{url}/api/v1/characters/aria/status?user_name=Sam")).await;
        assert_eq!(after["vitals"], status["vitals"], "the vitals as saved");
        assert_eq!(transcript(url, &session).await, saved_messages, "the transcript as saved");
        let memories = get(&format!("{url}/api/v1/characters/aria/memories")).await;
        assert_eq!(memories["data"], saved_memories["data"], "the memories as saved");
        // The snapshot exports as a document.
        let doc = get(&format!("{url}/api/v1/characters/aria/snapshots/five")).await;
        assert_eq!(doc["turns"], 5);
        // A turn after the load continues from the saved state.
        let next = chat(url, "aria", "Where were we?", "Sam", 24).await;
        // This turn's decay comes first: it starts from the saved energy.
        let decay =
            next["changes"].as_array().unwrap().iter().find(|c| c["name"] == "energy" && c["source"] == "decay");
        let decay = decay.cloned().unwrap_or_else(|| panic!("the turn's decay: {next}"));
        assert_eq!(decay["old_value"], status["vitals"]["energy"], "{next}");

        let reset = post(&format!("{url}/api/v1/characters/aria/reset"), json!({})).await;
        assert_eq!(reset["turns"], 0);
        assert_eq!(reset["memory_count"], 0);
        assert_eq!(reset["vitals"]["energy"], 80);
        let messages = transcript(url, &session).await;
        assert_eq!(messages.len(), 1, "only the greeting is left: {messages:?}");
        assert_eq!(messages[0].0, "assistant");
    });
}

#[test]
fn a_memory_from_turn_2_answers_turn_20_after_it_left_the_window() {
    // A small context, so the early turns leave the model's window long before turn 20.
    let Some((srv, _guard)) = server(&["--ctx-size", "1024", "--parallel", "1"]) else { return };
    runtime().block_on(async {
        let url = &srv.url;
        import(url, "aria.v3.json", "application/json").await;
        chat(url, "aria", "Good evening! I'm Sam.", "Sam", 24).await;
        chat(url, "aria", "Please remember this: my sister is called Thessaly and she lives in Oslo.", "Sam", 24).await;
        let small_talk = [
            "The wind is fierce tonight.",
            "How many steps did you say there were?",
            "Do ships still pass here often?",
            "What do you eat for breakfast?",
            "Do you read books at night?",
            "Which season do you like best?",
            "Have you ever seen a whale?",
            "Is the lamp hot to touch?",
            "How old is this tower?",
            "Do you have neighbours?",
            "What is your favourite pun?",
            "Do you ever get seasick?",
            "How do you get supplies?",
            "Do you play any music?",
            "What colour is the sea in winter?",
            "Do you keep a logbook?",
            "Are the stairs slippery when wet?",
        ];
        for (i, text) in small_talk.iter().enumerate() {
            let a = chat(url, "aria", text, "Sam", 24).await;
            assert!(!a["message"]["content"].as_str().unwrap().is_empty(), "turn {}", i + 3);
        }
        let status = get(&format!("{url}/api/v1/characters/aria/status?user_name=Sam")).await;
        assert_eq!(status["turns"], 19);
        // A summary is written only when turns leave the window: turn 2 is out of it.
        assert!(!status["summary"].as_str().unwrap().is_empty(), "the early turns were summarised: {status}");

        let answer = chat(url, "aria", "Quick question: what is my sister's name?", "Sam", 32).await;
        let used = answer["memories_used"].as_array().unwrap();
        if !used.iter().any(|m| m["content"].as_str().unwrap().contains("Thessaly") && m["turn"] == 2) {
            let ranked = post(
                &format!("{url}/api/v1/characters/aria/memories/search"),
                json!({"query": "Quick question: what is my sister's name?", "limit": 50}),
            )
            .await;
            let ranked: Vec<String> = ranked["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    format!("turn {} importance {} score {}: {}", m["turn"], m["importance"], m["score"], m["content"])
                })
                .collect();
            panic!("turn 2's memory must be retrieved for turn 20: {used:?}\nall, ranked:\n{}", ranked.join("\n"));
        }
        // Whether the 0.5B model then answers from it is the model's part (it did in some runs
        // and recited the lorebook in others), so it is shown, not asserted.
        eprintln!("turn 20: {}", answer["message"]["content"]);
        let search = post(
            &format!("{url}/api/v1/characters/aria/memories/search"),
            json!({"query": "Sam's sister", "limit": 3}),
        )
        .await;
        // Turn 20's own exchange asked about the sister too, so it may rank first.
        let found = search["data"].as_array().unwrap();
        assert!(
            found.iter().any(|m| m["turn"] == 2 && m["content"].as_str().unwrap().contains("Thessaly")),
            "{search}"
        );
    });
}

/// A WebSocket client of `/ws/characters`.
struct Ws {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    frames: Vec<Value>,
    n: u32,
}

impl Ws {
    async fn connect(url: &str) -> Self {
        let ws_url = format!("{}/ws/characters", url.replace("http://", "ws://"));
        let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        Self { ws, frames: Vec::new(), n: 0 }
    }

    /// Send a request and wait for its response (frames meanwhile are kept).
    async fn request(&mut self, kind: &str, data: Value) -> Value {
        self.n += 1;
        let id = format!("r{}", self.n);
        let frame = json!({"type": format!("{kind}_request"), "request_id": id, "data": data});
        self.ws.send(WsMessage::text(frame.to_string())).await.unwrap();
        loop {
            let frame = self.next().await;
            if frame["request_id"] == id && frame["type"] == format!("{kind}_response") {
                return frame;
            }
            self.frames.push(frame);
        }
    }

    async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(600), self.ws.next()).await.unwrap().unwrap().unwrap();
            if let WsMessage::Text(t) = msg {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }

    /// Wait until a frame of `kind` matching `pred` has arrived.
    async fn wait_for(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.frames.iter().position(|f| f["type"] == kind && pred(f)) {
            return self.frames.remove(i);
        }
        loop {
            let f = self.next().await;
            if f["type"] == kind && pred(&f) {
                return f;
            }
            self.frames.push(f);
        }
    }
}

#[test]
fn two_websocket_clients_share_a_character_and_a_restart_resumes_from_the_kv_cache() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let Some((mut srv, guard)) = server(&["--data-dir", &data_dir]) else { return };
    runtime().block_on(async {
        let url = srv.url.clone();
        import(&url, "bram.v2.png", "image/png").await;
        let mut a = Ws::connect(&url).await;
        let mut b = Ws::connect(&url).await;
        let ping = a.request("ping", json!({})).await;
        assert_eq!(ping["success"], true);
        let init_a = a.request("init", json!({"character": "Bram", "user_name": "Sam"})).await;
        assert_eq!(init_a["success"], true, "{init_a}");
        let init_b = b.request("init", json!({"character": "bram", "user_name": "Kim"})).await;
        assert_eq!(init_a["data"]["session_id"], init_b["data"]["session_id"], "one shared session");

        let answer = a.request("chat", json!({"message": "Can you mend this sword?", "max_tokens": 32})).await;
        assert_eq!(answer["success"], true, "{answer}");
        let reply = answer["data"]["message"]["content"].as_str().unwrap().to_owned();
        // B saw A's turn: the user message with A's name and the answer.
        let seen = b.wait_for("chat_message", |f| f["data"]["message"]["role"] == "assistant").await;
        assert_eq!(seen["data"]["message"]["content"], reply.as_str());
        let users: Vec<&Value> = b.frames.iter().filter(|f| f["type"] == "chat_message").collect();
        assert!(
            users.iter().any(|f| f["data"]["message"]["metadata"]["name"] == "Sam"),
            "B sees who spoke: {:?}",
            b.frames
        );
        let answer_b = b.request("chat", json!({"message": "And how much will that cost?", "max_tokens": 32})).await;
        assert_eq!(answer_b["success"], true);
        a.wait_for("chat_message", |f| f["data"]["message"]["metadata"]["name"] == "Kim").await;
        // Kim's turn renders the card for Kim (`{{user}}`), so it shares little with Sam's; Sam's
        // next turn finds Sam's prefix again (in a slot or the RAM cache).
        let again = a.request("chat", json!({"message": "Thank you, master smith.", "max_tokens": 24})).await;
        let usage = &again["data"]["message"]["usage"];
        assert!(usage["cached_tokens"].as_u64().unwrap() > 100, "Sam's turn resumes from the KV cache: {usage}");
        let status = a.request("status", json!({})).await;
        assert_eq!(status["data"]["turns"], 3);
        let search = a.request("memory_search", json!({"query": "sword"})).await;
        assert_eq!(search["success"], true, "{search}");
        assert!(!search["data"]["results"].as_array().unwrap().is_empty());
    });
    // A restart: the next turn starts from the session's KV snapshot on disk.
    srv.signal("TERM");
    srv.wait(Duration::from_secs(60)).expect("the server stops");
    drop(srv);
    let qwen = fixture("CHORUS_QWEN_CODER").unwrap();
    let minilm = std::env::var("CHORUS_MINILM").unwrap();
    let srv =
        TestServer::start(bin(), &["--model", qwen.to_str().unwrap(), "--model", &minilm, "--data-dir", &data_dir]);
    runtime().block_on(async {
        let mut c = Ws::connect(&srv.url).await;
        c.request("init", json!({"character": "bram", "user_name": "Sam"})).await;
        let answer = c.request("chat", json!({"message": "Is it ready yet?", "max_tokens": 24})).await;
        let usage = &answer["data"]["message"]["usage"];
        assert!(usage["cached_tokens"].as_u64().unwrap() > 50, "resumed from the disk snapshot: {usage}");
    });
    drop(guard);
}

#[test]
fn the_cli_falls_back_to_local_mode_and_refuses_with_no_fallback() {
    let Some(qwen) = fixture("CHORUS_QWEN_CODER") else { return };
    let _guard = one_at_a_time();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let import = Command::new(bin())
        .args(["characters", "import", "--data-dir", dir])
        .arg(cards().join("aria.v3.json"))
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let nobody = format!("ws://{closed}/ws/characters");

    let refused = Command::new(bin())
        .args(["chat", "--character", "aria", "--no-fallback", "--server-url", &nobody, "--data-dir", dir])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("attempt 1 of 3") && err.contains("attempt 3 of 3"), "{err}");
    assert!(err.contains("--no-fallback"), "says what to do: {err}");

    let mut child = Command::new(bin())
        .args(["chat", "--character", "aria", "--user-name", "Sam", "--max-tokens", "32", "--server-url", &nobody])
        .args(["--data-dir", dir, "--model", qwen.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"Hello Aria, I'm Sam!\n/status\n/exit\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("local mode"), "{stderr}");
    assert!(stdout.contains("Aria: "), "the character answered: {stdout}");
    assert!(stderr.contains("energy: ") && stderr.contains("turn 1"), "the vitals after the turn: {stderr}");

    // --vitals-only: the vitals (kept in the data dir's store since the turn above), and out.
    let vitals = Command::new(bin())
        .args(["chat", "--character", "aria", "--vitals-only", "--user-name", "Sam", "--server-url", &nobody])
        .args(["--data-dir", dir, "--model", qwen.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&vitals.stdout);
    assert!(vitals.status.success(), "{}", String::from_utf8_lossy(&vitals.stderr));
    assert!(stdout.contains("mood: ") && stdout.contains("trust: ") && stdout.contains("turn 1"), "{stdout}");
}

#[test]
fn two_characters_hold_a_six_exchange_conversation() {
    let Some((srv, _guard)) = server(&[]) else { return };
    runtime().block_on(async {
        let url = &srv.url;
        import(url, "aria.v3.json", "application/json").await;
        import(url, "bram.v2.json", "application/json").await;
        let body = json!({
            "participants": [{"character": "aria"}, {"character": "bram"}],
            "topic": "how to keep warm on a stormy night",
            "turns": 6,
            "max_tokens": 40,
        });
        let conversation = post(&format!("{url}/api/v1/conversations"), body).await;
        let exchanges = conversation["exchanges"].as_array().unwrap();
        assert_eq!(exchanges.len(), 6, "{conversation}");
        for (i, e) in exchanges.iter().enumerate() {
            assert_eq!(e["speaker"], if i % 2 == 0 { "Aria" } else { "Bram" }, "{e}");
            assert!(!e["message"].as_str().unwrap().trim().is_empty(), "{e}");
        }
        eprintln!("{}", serde_json::to_string_pretty(exchanges).unwrap());
        let session = conversation["session_id"].as_str().unwrap();
        // The opener (`Let's talk about: TOPIC`), then the six exchanges.
        let messages = transcript(url, session).await;
        assert_eq!(messages.len(), 7, "{messages:?}");
        assert!(messages[0].1.contains("how to keep warm"), "{messages:?}");
    });
}
