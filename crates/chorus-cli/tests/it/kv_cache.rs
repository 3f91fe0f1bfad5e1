//! The prompt cache beyond the slots, on the real `qwen-coder` fixture: sessions that lost
//! their slot resume from host RAM, a restart resumes them from their disk snapshots,
//! restored prefixes answer exactly as recomputed ones, foreign and corrupt snapshots are
//! ignored, and the RAM and disk budgets hold. The numbers come from the server's own
//! `usage.cached_tokens`, `/health` and `/metrics`.

use std::path::Path;
use std::time::Duration;

use chorus_proto::native::{CreateSessionRequest, Message, PromptRequest};
use chorus_proto::openai::{ToolChoice, ToolChoiceMode};
use chorus_testkit::server::TestServer;
use serde_json::{Value, json};

use crate::real_model::{fixture, one_at_a_time, patient_client, prompt, real_server};
use crate::{bin, runtime};

const MIB: u64 = 1 << 20;

/// A session prompt answered without tools (the agent still shows them to the model, so
/// every session's prompt starts with the same system prompt).
fn turn(content: &str) -> PromptRequest {
    PromptRequest { tool_choice: Some(ToolChoice::Mode(ToolChoiceMode::None)), ..prompt(content, 12) }
}

/// A note of about 250 tokens, different for every `i` from its first words on.
fn note(i: usize) -> String {
    let places = ["harbour", "orchard", "library", "station", "bakery", "quarry", "lighthouse", "market"];
    let place = places[i % places.len()];
    let mut text = format!("Note {i} is about the {place}. ");
    for j in 0..9 {
        text.push_str(&format!(
            "On day {} at the {place} we counted {} crates and {} gulls, and the wind came from the {}. ",
            i * 10 + j,
            3 * i + j,
            7 * i + 2 * j,
            ["north", "south", "east", "west"][(i + j) % 4]
        ));
    }
    text.push_str("Reply with one short sentence about this note.");
    text
}

fn usage(m: &Message) -> chorus_proto::native::TokenUsage {
    m.usage.unwrap_or_else(|| panic!("the answer has no usage: {m:?}"))
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The value of one sample of `/metrics` (labels written as in the exposition, e.g.
/// `chorus_prompt_cache_hits_total{tier="ram"}`); 0 when absent.
async fn metric(url: &str, sample: &str) -> f64 {
    let text = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// The cache part of `/health`, checked against its own budgets.
async fn cache_within_budgets(url: &str) -> Value {
    let cache = get_json(&format!("{url}/health")).await["cache"].clone();
    let n = |k: &str| cache[k].as_u64().unwrap();
    assert!(n("ram_bytes") <= n("ram_budget_bytes"), "RAM over its budget: {cache}");
    assert!(n("disk_bytes") <= n("disk_budget_bytes"), "disk over its budget: {cache}");
    cache
}

/// The snapshot files in `DATA/kv-cache` and the key each is for (from its JSON header).
fn snapshots(data: &Path) -> Vec<(std::path::PathBuf, String, u64)> {
    let Ok(dir) = std::fs::read_dir(data.join("kv-cache")) else { return Vec::new() };
    let mut out = Vec::new();
    for path in dir.map(|e| e.unwrap().path()) {
        if path.extension().is_none_or(|e| e != "kv") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"CHORUSKV");
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let header: Value = serde_json::from_slice(&bytes[12..12 + len]).unwrap();
        out.push((path, header["key"].as_str().unwrap().to_owned(), bytes.len() as u64));
    }
    out
}

/// Bytes of every file in `DATA/kv-cache` but the model hash memo (snapshots being written
/// included).
fn disk_use(data: &Path) -> u64 {
    std::fs::read_dir(data.join("kv-cache"))
        .map(|d| {
            d.map(|e| e.unwrap())
                .filter(|e| e.file_name() != "model-sha256.json")
                .map(|e| e.metadata().unwrap().len())
                .sum()
        })
        .unwrap_or(0)
}

/// Stop a server as a person does (SIGTERM) and wait until it has exited: its last
/// snapshots are written by then.
fn stop(mut srv: TestServer) {
    srv.signal("TERM");
    let status = srv.wait(Duration::from_secs(60)).expect("the server exits within 60 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}; stderr:\n{}", srv.stderr());
}

#[test]
fn eight_sessions_on_two_slots_resume_their_history_from_ram() {
    let Some((srv, _guard)) = real_server("CHORUS_QWEN_CODER", &["--parallel", "2"]) else { return };
    let c = patient_client(&srv.url);
    runtime().block_on(async {
        let mut sessions = Vec::new();
        for i in 0..8 {
            let id = c.create_session(&CreateSessionRequest::default()).await.unwrap().id;
            let first = c.prompt(&id, &turn(&note(i))).await.unwrap();
            sessions.push((id, usage(&first)));
        }
        // Each session's second turn finds its slot taken by two later sessions.
        for (i, (id, first)) in sessions.iter().enumerate() {
            let second =
                usage(&c.prompt(id, &turn(&format!("One more detail about note {i}, please."))).await.unwrap());
            eprintln!("session {i}: first {first:?}, second {second:?}");
            assert!(
                second.cached_tokens >= first.prompt_tokens + first.completion_tokens - 2,
                "session {i}'s second turn recomputed its history: first {first:?}, second {second:?}"
            );
            cache_within_budgets(&srv.url).await;
        }
        let hits = metric(&srv.url, r#"chorus_prompt_cache_hits_total{tier="ram"}"#).await;
        let restored = metric(&srv.url, r#"chorus_prompt_cache_restored_tokens_total{tier="ram"}"#).await;
        assert!(hits >= 8.0, "every second turn restored from RAM: {hits} hits");
        let history: u64 = sessions.iter().map(|(_, u)| u.prompt_tokens).sum();
        assert!(restored >= history as f64, "{restored} tokens restored, {history} in the first prompts");
    });
}

#[test]
fn a_restart_resumes_a_session_from_its_disk_snapshot_within_the_disk_budget() {
    let _guard = one_at_a_time();
    let Some(model) = fixture("CHORUS_QWEN_CODER") else { return };
    let data = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", data.path().join("chorus.db").display());
    // Room for two snapshots of these sessions (about 900 tokens, 11 MB each), not three.
    let budget_mib = 28;
    let budget = budget_mib.to_string();
    let args = [
        "--model",
        model.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
        "--database-url",
        &db,
        "--cache-disk",
        &budget,
    ];
    let disk_ok = |when: &str| {
        let used = disk_use(data.path());
        assert!(used <= budget_mib * MIB, "{when}: {used} bytes in kv-cache, over --cache-disk {budget_mib} MiB");
    };

    let srv = TestServer::start(bin(), &args);
    let c = patient_client(&srv.url);
    let (ids, firsts) = runtime().block_on(async {
        let mut ids = Vec::new();
        let mut firsts = Vec::new();
        for i in 0..3 {
            let id = c.create_session(&CreateSessionRequest::default()).await.unwrap().id;
            firsts.push(usage(&c.prompt(&id, &turn(&note(i))).await.unwrap()));
            ids.push(id);
            disk_ok(&format!("after session {i}"));
            cache_within_budgets(&srv.url).await;
        }
        (ids, firsts)
    });
    stop(srv);
    let keys = |data: &Path| {
        let mut keys: Vec<String> = snapshots(data).into_iter().map(|(_, k, _)| k).collect();
        keys.sort();
        keys
    };
    let key = |i: usize| format!("session/{}", ids[i]);
    let mut expected = vec![key(1), key(2)];
    expected.sort();
    assert_eq!(keys(data.path()), expected, "the two most recent sessions' snapshots are kept");

    let srv = TestServer::start(bin(), &args);
    let c = patient_client(&srv.url);
    runtime().block_on(async {
        // Session 2 resumes from its snapshot: its whole history is restored.
        let resumed = usage(&c.prompt(&ids[2], &turn("One more detail about note 2, please.")).await.unwrap());
        eprintln!("after the restart: first {:?}, second {resumed:?}", firsts[2]);
        assert!(resumed.cached_tokens >= firsts[2].prompt_tokens, "{resumed:?} after {:?}", firsts[2]);
        assert_eq!(metric(&srv.url, r#"chorus_prompt_cache_hits_total{tier="disk"}"#).await, 1.0);
        let restored = metric(&srv.url, r#"chorus_prompt_cache_restored_tokens_total{tier="disk"}"#).await;
        assert_eq!(restored, f64::from(resumed.cached_tokens as u32));
        // Session 0's snapshot gave way to the budget: it recomputes its own history.
        let recomputed = usage(&c.prompt(&ids[0], &turn("One more detail about note 0, please.")).await.unwrap());
        assert!(recomputed.cached_tokens < firsts[0].prompt_tokens, "{recomputed:?}");
        assert!(metric(&srv.url, r#"chorus_prompt_cache_misses_total{tier="disk"}"#).await >= 1.0);
        disk_ok("after the restart");
        cache_within_budgets(&srv.url).await;
        // Deleting a session deletes its snapshot.
        c.delete_session(&ids[2]).await.unwrap();
        let gone = async {
            while keys(data.path()).contains(&key(2)) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), gone).await.expect("session 2's snapshot is deleted");
        assert!(keys(data.path()).contains(&key(0)), "session 0's new snapshot stays");
    });
}

#[test]
fn a_corrupt_or_foreign_snapshot_is_a_logged_miss() {
    let _guard = one_at_a_time();
    let Some(qwen) = fixture("CHORUS_QWEN_CODER") else { return };
    // The foreign model: the testkit's tiny one, served under the same id.
    let tiny = chorus_testkit::tiny_model_path();
    let data = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", data.path().join("chorus.db").display());
    let dir = data.path().to_str().unwrap();
    let flags = |model: &Path| -> Vec<String> {
        ["--model", model.to_str().unwrap(), "--alias", "assistant", "--data-dir", dir, "--database-url", &db]
            .map(str::to_owned)
            .to_vec()
    };
    let start = |model: &Path| {
        let mut args = flags(model);
        if model == tiny.as_path() {
            args.extend(["--ctx-size", "16384"].map(str::to_owned));
        }
        TestServer::start(bin(), &args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let srv = start(&qwen);
    let c = patient_client(&srv.url);
    let id = runtime().block_on(async {
        let id = c.create_session(&CreateSessionRequest::default()).await.unwrap().id;
        c.prompt(&id, &turn(&note(0))).await.unwrap();
        id
    });
    stop(srv);
    let files = snapshots(data.path());
    assert_eq!(files.len(), 1, "one snapshot: {files:?}");
    // Flip bytes in the middle of the KV state.
    let (path, _, size) = &files[0];
    let mut bytes = std::fs::read(path).unwrap();
    let at = *size as usize - 4096;
    for b in &mut bytes[at..at + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();

    let srv = start(&qwen);
    let c = patient_client(&srv.url);
    runtime().block_on(async {
        let second = c.prompt(&id, &turn("One more detail about note 0, please.")).await.unwrap();
        assert!(!second.content.trim().is_empty());
        assert_eq!(usage(&second).cached_tokens, 0, "nothing restored from a corrupt file: {second:?}");
        assert_eq!(metric(&srv.url, r#"chorus_prompt_cache_hits_total{tier="disk"}"#).await, 0.0);
        assert_eq!(metric(&srv.url, r#"chorus_prompt_cache_misses_total{tier="disk"}"#).await, 1.0);
    });
    let log = srv.stderr();
    assert!(log.contains("checksum does not match"), "the miss is logged:\n{log}");
    stop(srv);
    assert_eq!(snapshots(data.path()).len(), 1, "the turn wrote a good snapshot again");

    // Another model file under the same model id: its snapshot is never restored.
    let srv = start(&tiny);
    let c = patient_client(&srv.url);
    runtime().block_on(async {
        let third = c.prompt(&id, &turn("And a last detail, please.")).await.unwrap();
        assert!(!third.content.trim().is_empty());
        assert_eq!(usage(&third).cached_tokens, 0, "{third:?}");
        assert_eq!(metric(&srv.url, r#"chorus_prompt_cache_hits_total{tier="disk"}"#).await, 0.0);
    });
    let log = srv.stderr();
    assert!(log.contains("prompt snapshot ignored and deleted: written for model file"), "{log}");
}

/// `POST /v1/chat/completions`, greedy, under `prompt_cache_key` `key`: the answer and its
/// usage.
async fn chat(url: &str, messages: &Value, key: &str, cache_prompt: bool) -> (String, Value) {
    let body = json!({
        "messages": messages, "temperature": 0, "max_tokens": 32,
        "prompt_cache_key": key, "cache_prompt": cache_prompt,
    });
    let client = reqwest::Client::new();
    let r: Value =
        client.post(format!("{url}/v1/chat/completions")).json(&body).send().await.unwrap().json().await.unwrap();
    let text = r["choices"][0]["message"]["content"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    (text, r["usage"].clone())
}

fn conversation(i: usize) -> Value {
    json!([
        {"role": "system", "content": "You answer in one sentence."},
        {"role": "user", "content": note(i)},
    ])
}

fn with_turn(history: &Value, answer: &str, question: &str) -> Value {
    let mut messages = history.as_array().unwrap().clone();
    messages.push(json!({"role": "assistant", "content": answer}));
    messages.push(json!({"role": "user", "content": question}));
    Value::Array(messages)
}

fn cached(usage: &Value) -> u64 {
    usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap()
}

fn prompt_tokens(usage: &Value) -> u64 {
    usage["prompt_tokens"].as_u64().unwrap()
}

#[test]
fn a_restored_prefix_answers_token_for_token_as_a_recomputed_one() {
    let _guard = one_at_a_time();
    let Some(model) = fixture("CHORUS_QWEN_CODER") else { return };
    let data = tempfile::tempdir().unwrap();
    // One slot, and RAM for two conversations' states (about 300 tokens, 4 MB each), not three.
    let args = [
        "--model",
        model.to_str().unwrap(),
        "--parallel",
        "1",
        "--cache-ram",
        "10",
        "--data-dir",
        data.path().to_str().unwrap(),
    ];
    let srv = TestServer::start(bin(), &args);
    let url = srv.url.clone();
    let (a, b) = (conversation(1), conversation(2));
    let a_cold = runtime().block_on(async {
        let url = url.as_str();
        let cache = cache_within_budgets(url).await;
        assert_eq!(cache["ram_budget_bytes"], 10 * MIB);
        let (a_cold, a_usage) = chat(url, &a, "a", true).await;
        assert_eq!(cached(&a_usage), 0);
        let (b_text, _) = chat(url, &b, "b", true).await;
        cache_within_budgets(url).await;
        // A's slot went to B; A comes back from RAM, all but its last prompt token.
        let (a_restored, usage) = chat(url, &a, "a", true).await;
        assert_eq!(cached(&usage), prompt_tokens(&usage) - 1, "{usage}");
        assert_eq!(a_restored, a_cold, "a prompt restored from RAM answers as the computed one");
        assert_eq!(usage["completion_tokens"], a_usage["completion_tokens"]);
        let (a_recomputed, usage) = chat(url, &a, "a", false).await;
        assert_eq!(cached(&usage), 0, "cache_prompt: false recomputes: {usage}");
        assert_eq!(a_recomputed, a_cold, "a recomputed prompt answers as the restored one");
        cache_within_budgets(url).await;

        // A partial restore: A and its answer come back from RAM, the new turn is computed. It
        // answers as the same turn continuing A's cells in the slot does.
        chat(url, &b, "b", true).await;
        let a2 = with_turn(&a, &a_cold, "Which day had the most gulls?");
        let (from_ram, usage) = chat(url, &a2, "a", true).await;
        assert!(cached(&usage) >= prompt_tokens(&a_usage), "A's history is restored: {usage}");
        assert!(cached(&usage) < prompt_tokens(&usage) - 5, "the new turn is computed: {usage}");
        let (b_again, _) = chat(url, &b, "b", true).await;
        assert_eq!(b_again, b_text);
        assert_eq!(chat(url, &a, "a", true).await.0, a_cold, "A, reusing its prefix from RAM");
        let (from_slot, slot_usage) = chat(url, &a2, "a", true).await;
        assert_eq!(cached(&slot_usage), cached(&usage), "the same prefix from the slot: {slot_usage}");
        assert_eq!(from_ram, from_slot, "a prefix restored from RAM continues as the slot's own cells do");
        // Not compared with a recomputation: A's answer was computed token by token, a
        // recomputation computes it in one batch, which llama.cpp's kernels sum in another
        // order (the same holds for llama-server).
        let ram = cache_within_budgets(url).await;
        eprintln!("RAM cache: {ram}");
        assert!(metric(url, r#"chorus_prompt_cache_hits_total{tier="ram"}"#).await >= 4.0);
        // A's state, one prompt, is what its disk snapshot holds.
        chat(url, &a, "a", true).await;
        a_cold
    });
    stop(srv);

    // From disk after a restart: the same answer again.
    let srv = TestServer::start(bin(), &args);
    let url = srv.url.as_str();
    runtime().block_on(async {
        let (a_disk, usage) = chat(url, &a, "a", true).await;
        assert_eq!(cached(&usage), prompt_tokens(&usage) - 1, "{usage}");
        assert_eq!(metric(url, r#"chorus_prompt_cache_hits_total{tier="disk"}"#).await, 1.0);
        assert_eq!(a_disk, a_cold, "a prompt restored from disk answers as the computed one");
    });
}

// --- Structural tests on the testkit's tiny model ----------------------------------------

/// `POST PATH` with a JSON body (or none): status and body.
async fn post(url: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.post(format!("{url}{path}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A greedy chat request on the tiny model: its usage.
async fn tiny_chat(url: &str, content: &str, key: Option<&str>) -> Value {
    let mut body = json!({"messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": 4});
    if let Some(key) = key {
        body["prompt_cache_key"] = json!(key);
    }
    let (status, r) = post(url, "/v1/chat/completions", Some(body)).await;
    assert_eq!(status, 200, "{r}");
    r["usage"].clone()
}

#[test]
fn slot_actions_save_erase_and_restore_a_slot_as_llama_server_does() {
    let dir = tempfile::tempdir().unwrap();
    let srv = crate::server(&["--parallel", "1", "--slot-save-path", dir.path().to_str().unwrap()]);
    let url = srv.url.as_str();
    runtime().block_on(async {
        let question = "Tell me about the orchard and its crates, and the gulls over the harbour.";
        let first = tiny_chat(url, question, None).await;
        let (status, saved) = post(url, "/slots/0?action=save", Some(json!({"filename": "orchard.bin"}))).await;
        assert_eq!(status, 200, "{saved}");
        assert_eq!(saved["id_slot"], 0);
        assert_eq!(saved["filename"], "orchard.bin");
        let n = saved["n_saved"].as_u64().unwrap();
        assert!(n >= prompt_tokens(&first), "{saved} after {first}");
        let written = saved["n_written"].as_u64().unwrap();
        assert_eq!(written, std::fs::metadata(dir.path().join("orchard.bin")).unwrap().len());
        assert!(saved["timings"]["save_ms"].is_number());

        let (status, erased) = post(url, "/slots/0?action=erase", None).await;
        assert_eq!((status, erased.clone()), (200, json!({"id_slot": 0, "n_erased": n})));
        let (status, restored) = post(url, "/slots/0?action=restore", Some(json!({"filename": "orchard.bin"}))).await;
        assert_eq!(status, 200, "{restored}");
        assert_eq!(restored["n_restored"].as_u64(), Some(n));
        assert_eq!(restored["n_read"].as_u64(), Some(written));
        // The slot holds the file's cells again: the same question reuses all of them.
        let again = tiny_chat(url, question, None).await;
        assert_eq!(cached(&again), prompt_tokens(&again) - 1, "{again}");

        // Refusals, in OpenAI's error object.
        for (path, body, param) in [
            ("/slots/0?action=save", Some(json!({"filename": "../escape.bin"})), "filename"),
            ("/slots/0?action=restore", Some(json!({"filename": "missing.bin"})), "filename"),
            ("/slots/0?action=save", None, "filename"),
            ("/slots/3?action=erase", None, "id_slot"),
            ("/slots/x?action=erase", None, "id_slot"),
            ("/slots/0?action=fly", None, "action"),
            ("/slots/0", None, "action"),
        ] {
            let (status, e) = post(url, path, body).await;
            assert_eq!(status, 400, "{path}: {e}");
            assert_eq!(e["error"]["type"], "invalid_request_error", "{path}: {e}");
            assert_eq!(e["error"]["param"], param, "{path}: {e}");
        }
        assert!(!dir.path().join("..").join("escape.bin").exists());
    });
    drop(srv);

    // Without --slot-save-path, as llama-server: 501.
    let srv = crate::server(&[]);
    runtime().block_on(async {
        let (status, e) = post(&srv.url, "/slots/0?action=erase", None).await;
        assert_eq!(status, 501, "{e}");
        assert_eq!(e["error"]["type"], "not_supported_error");
        assert!(e["error"]["message"].as_str().unwrap().contains("--slot-save-path"), "{e}");
    });
}

#[test]
fn with_cache_ram_0_and_cache_disk_0_nothing_outlives_the_slot() {
    let srv = crate::server(&["--parallel", "1", "--cache-ram", "0", "--cache-disk", "0"]);
    let url = srv.url.as_str();
    runtime().block_on(async {
        let cache = get_json(&format!("{url}/health")).await["cache"].clone();
        assert_eq!(
            cache,
            json!({"ram_budget_bytes": 0, "ram_bytes": 0, "ram_tokens": 0,
                                 "disk_budget_bytes": 0, "disk_bytes": 0})
        );
        let a = "The harbour at dawn: boats, nets, gulls and the smell of rope and tar. ".repeat(3);
        let b = "A library at night: lamps, dust, the slow tick of a clock over the desks. ".repeat(3);
        let a1 = tiny_chat(url, &a, Some("a")).await;
        tiny_chat(url, &b, Some("b")).await;
        let a2 = tiny_chat(url, &a, Some("a")).await;
        // Only the chat template's opening, shared with B, is reused; A is recomputed.
        assert!(cached(&a2) < prompt_tokens(&a1) / 2, "{a2}");
        assert_eq!(metric(url, r#"chorus_prompt_cache_hits_total{tier="ram"}"#).await, 0.0);
        assert_eq!(metric(url, "chorus_prompt_cache_save_seconds_count").await, 0.0, "no state was copied");
    });
    assert!(snapshots(srv.dir()).is_empty(), "no snapshot written");
}

#[test]
fn with_the_defaults_a_conversation_whose_slot_was_taken_resumes_from_ram() {
    let mut srv = crate::server(&["--parallel", "1"]);
    let url = srv.url.clone();
    runtime().block_on(async {
        let url = url.as_str();
        // Long enough (over 64 tokens) to be worth keeping when the slot is taken.
        let a = "The harbour at dawn: boats, nets, gulls and the smell of rope and tar. ".repeat(3);
        let b = "A library at night: lamps, dust, the slow tick of a clock over the desks. ".repeat(3);
        tiny_chat(url, &a, Some("a")).await;
        tiny_chat(url, &b, Some("b")).await;
        let a2 = tiny_chat(url, &a, Some("a")).await;
        assert_eq!(cached(&a2), prompt_tokens(&a2) - 1, "{a2}");
        assert_eq!(metric(url, r#"chorus_prompt_cache_hits_total{tier="ram"}"#).await, 1.0);
        let cache = cache_within_budgets(url).await;
        assert!(cache["ram_bytes"].as_u64().unwrap() > 0, "B's state is in RAM now: {cache}");
    });
    // Both keyed conversations have a snapshot, written by the time the server has stopped.
    srv.signal("TERM");
    assert!(srv.wait(Duration::from_secs(60)).is_some_and(|s| s.success()));
    let mut keys: Vec<String> = snapshots(srv.dir()).into_iter().map(|(_, k, _)| k).collect();
    keys.sort();
    assert_eq!(keys, ["client/a", "client/b"]);
}

#[test]
fn a_prompt_cache_key_over_256_bytes_is_refused() {
    let srv = crate::server(&[]);
    runtime().block_on(async {
        let body = json!({"messages": [{"role": "user", "content": "hi"}], "prompt_cache_key": "k".repeat(257)});
        let (status, e) = post(&srv.url, "/v1/chat/completions", Some(body)).await;
        assert_eq!(status, 400, "{e}");
        assert_eq!(e["error"]["param"], "prompt_cache_key");
    });
}

/// 8 conversations at once on 2 slots, each asked the same twice: every repeat comes back
/// whole (from a slot, RAM or disk) while others decode beside it. `ram_mib` 0 sends every
/// restore through the disk thread, right behind the snapshot it needs.
fn eight_concurrent_conversations_on_two_slots(ram_mib: &str) -> (f64, f64) {
    let srv = crate::server(&["--parallel", "2", "--cache-ram", ram_mib]);
    let url = srv.url.clone();
    runtime().block_on(async {
        let turn = |i: usize| {
            let url = url.clone();
            async move {
                let content = format!("Conversation {i}: ").repeat(12) + &note(i);
                (i, tiny_chat(&url, &content, Some(&format!("c{i}"))).await)
            }
        };
        let firsts: Vec<(usize, Value)> = futures::future::join_all((0..8).map(turn)).await;
        assert!(firsts.iter().all(|(_, u)| prompt_tokens(u) > 0));
        let repeats: Vec<(usize, Value)> = futures::future::join_all((0..8).map(turn)).await;
        let whole = repeats.iter().filter(|(_, u)| cached(u) == prompt_tokens(u) - 1).count();
        assert_eq!(whole, 8, "repeated prompts that came back whole: {repeats:?}");
        cache_within_budgets(&url).await;
        let ram = metric(&url, r#"chorus_prompt_cache_hits_total{tier="ram"}"#).await;
        let disk = metric(&url, r#"chorus_prompt_cache_hits_total{tier="disk"}"#).await;
        eprintln!("--cache-ram {ram_mib}: restores: {ram} from RAM, {disk} from disk");
        (ram, disk)
    })
}

#[test]
fn eight_concurrent_conversations_on_two_slots_resume_from_ram_while_others_decode() {
    let (ram, _) = eight_concurrent_conversations_on_two_slots("2");
    assert!(ram >= 6.0, "with 2 slots, at least 6 came back from RAM: {ram}");
}

#[test]
fn eight_concurrent_conversations_on_two_slots_resume_from_disk_while_others_decode() {
    let (ram, disk) = eight_concurrent_conversations_on_two_slots("0");
    assert_eq!(ram, 0.0);
    assert!(disk >= 6.0, "with 2 slots and no RAM cache, at least 6 came back from disk: {disk}");
}
