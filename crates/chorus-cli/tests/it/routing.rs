//! The content router end to end on the real fixtures at default flags: `qwen-coder` (a
//! code model: its vocabulary has fill-in-the-middle tokens), `gemma` (given a Gemma chat
//! template, the general model) and `minilm` (the semantic stage's embeddings), with the
//! shipped router defaults. Requests name no model, or `auto`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chorus_testkit::server::TestServer;
use serde_json::{Value, json};

use crate::bin;
use crate::real_model::{fixture, one_at_a_time};

fn config(dir: &Path) -> Option<PathBuf> {
    let qwen = fixture("CHORUS_QWEN_CODER")?;
    let gemma = fixture("CHORUS_GEMMA")?;
    let minilm = crate::models::minilm()?;
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gemma3-chat.jinja");
    let text = format!(
        "[[models]]\nid = \"qwen-coder\"\nsource = {:?}\n\n\
         [[models]]\nid = \"gemma\"\nsource = {:?}\nchat_template = {:?}\n\n\
         [[models]]\nid = \"minilm\"\nsource = {:?}\n",
        qwen.display().to_string(),
        gemma.display().to_string(),
        template.display().to_string(),
        minilm.display().to_string(),
    );
    let path = dir.join("chorus.toml");
    std::fs::write(&path, text).unwrap();
    Some(path)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(600)).build().unwrap()
}

async fn post(url: &str, path: &str, body: Value) -> (u16, Option<String>, Value) {
    let r = http().post(format!("{url}{path}")).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let header = r.headers().get("x-chorus-route").map(|v| v.to_str().unwrap().to_owned());
    (status, header, r.json().await.unwrap())
}

async fn chat(url: &str, prompt: &str, extra: Value) -> (u16, Option<String>, Value) {
    let mut body = json!({
        "model": "auto",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 16,
        "temperature": 0
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    post(url, "/v1/chat/completions", body).await
}

async fn dry_run(url: &str, prompt: &str) -> Value {
    let (status, _, body) = post(url, "/api/v1/route", json!({"prompt": prompt})).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn assert_invalid(status: u16, body: &Value, param: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], param, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
}

/// Semantic prompts: no rule of the shipped defaults matches them, so the classifier decides.
const CODE: &str = "my recursive function blows the stack when the list is long, how do I make it iterative?";
const GENERAL: &str = "What should I pack for a week of hiking in the Alps in September?";

#[test]
fn prompts_reach_the_model_of_their_category_and_the_header_matches_the_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let Some(config) = config(dir.path()) else { return };
    let _lock = one_at_a_time();
    let server = TestServer::start(bin(), &["--config", config.to_str().unwrap()]);
    crate::runtime().block_on(async {
        let url = &server.url;

        // `/v1/chat/completions` with `model: "auto"`: code to qwen-coder, the rest to gemma.
        let (status, header, body) = chat(url, CODE, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model"], "qwen-coder", "{body}");
        let header = header.expect("a routed answer carries x-chorus-route");
        assert!(header.starts_with("category=code; stage=semantic; score="), "{header}");
        assert!(header.ends_with("; model=qwen-coder"), "{header}");
        let dry = dry_run(url, CODE).await;
        assert_eq!(dry["header"], header, "the dry run and the header agree: {dry}");
        assert_eq!((dry["category"].as_str(), dry["model"].as_str()), (Some("code"), Some("qwen-coder")));
        assert!(dry["margin"].as_f64().unwrap() > 0.0, "{dry}");

        let (status, header, body) = chat(url, GENERAL, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model"], "gemma", "{body}");
        let header = header.unwrap();
        assert!(header.starts_with("category=general; stage=semantic"), "{header}");
        assert_eq!(dry_run(url, GENERAL).await["header"], header);

        // An absent `model` is routed the same way.
        let (_, header, body) = post(
            url,
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": CODE}], "max_tokens": 4}),
        )
        .await;
        assert_eq!((body["model"].as_str(), header.is_some()), (Some("qwen-coder"), true), "{body}");

        // A named model is not routed: no header.
        let (status, header, _) = chat(url, CODE, json!({"model": "gemma"})).await;
        assert_eq!((status, header), (200, None));

        // `/generate` (TBot's fields, the AI Tester seed's `max_gen` and `from`).
        let (status, header, body) =
            post(url, "/generate", json!({"prompt": CODE, "max_gen": 12, "from": "tester", "temperature": 0})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["model"].as_str(), body["category"].as_str()), (Some("qwen-coder"), Some("code")), "{body}");
        assert_eq!(body["from"], "qwen-coder");
        assert_eq!(body["text"], body["response"]);
        assert!(!body["text"].as_str().unwrap().is_empty(), "{body}");
        assert!(body["tokens_generated"].as_u64().unwrap() <= 12, "{body}");
        assert!(header.unwrap().starts_with("category=code"));
        let (_, _, body) = post(url, "/generate", json!({"prompt": GENERAL, "max_tokens": 8})).await;
        assert_eq!((body["model"].as_str(), body["category"].as_str()), (Some("gemma"), Some("general")), "{body}");

        // A forced category overrides the classifier: the field, and TBot's alias.
        let (_, header, body) = chat(url, GENERAL, json!({"category": "code"})).await;
        assert_eq!(body["model"], "qwen-coder", "{body}");
        assert_eq!(header.unwrap(), "category=code; stage=forced; model=qwen-coder");
        let (_, _, body) =
            post(url, "/generate", json!({"prompt": GENERAL, "category": "code_generation", "max_tokens": 4})).await;
        assert_eq!(
            (body["category"].as_str(), body["route"]["stage"].as_str()),
            (Some("code"), Some("forced")),
            "{body}"
        );
        let (_, _, dry) = post(url, "/api/v1/route", json!({"prompt": GENERAL, "category": "math"})).await;
        assert_eq!((dry["category"].as_str(), dry["stage"].as_str()), (Some("math"), Some("forced")), "{dry}");

        // An image request with no image model: 501, saying so.
        let (status, header, body) = post(url, "/generate", json!({"prompt": "Generate an image of a sunset"})).await;
        assert_eq!(status, 501, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("no image model"), "{body}");
        assert_eq!(header, None);

        // Bad input: a 400 naming the field.
        let (status, _, body) = post(url, "/generate", json!({"prompt": "hi", "category": "astrology"})).await;
        assert_invalid(status, &body, "category");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("general, code, math, translation, image"),
            "{body}"
        );
        let (status, _, body) = chat(url, "hi", json!({"category": "astrology"})).await;
        assert_invalid(status, &body, "category");
        let (status, _, body) = post(url, "/translate", json!({"target_lang": "French"})).await;
        assert_invalid(status, &body, "text");
        let (status, _, body) = post(url, "/translate", json!({"text": "Good morning"})).await;
        assert_invalid(status, &body, "target_lang");
        let (status, _, body) = post(url, "/math/solve", json!({"problem": "  "})).await;
        assert_invalid(status, &body, "problem");
        let (status, _, body) = post(url, "/code/completion", json!({"suffix": "x"})).await;
        assert_invalid(status, &body, "prefix");
        let (status, _, body) = post(url, "/generate", json!({"prompt": "hi", "max_gen": 0})).await;
        assert_invalid(status, &body, "max_gen");

        // The decisions are counted.
        let metrics = http().get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains(r#"chorus_route_total{category="code",stage="semantic"}"#), "{metrics}");
        assert!(metrics.contains(r#"chorus_route_total{category="code",stage="forced"}"#));
        assert!(metrics.contains("chorus_route_seconds_count"));
    });
}

#[test]
fn code_completion_fills_a_function_body_and_the_task_endpoints_answer() {
    let dir = tempfile::tempdir().unwrap();
    let Some(config) = config(dir.path()) else { return };
    let _lock = one_at_a_time();
    let server = TestServer::start(bin(), &["--config", config.to_str().unwrap()]);
    crate::runtime().block_on(async {
        let url = &server.url;
        // The cursor is in the body, after its indentation, as in an editor.
        let prefix = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    ";
        let suffix = "\n\nprint(fibonacci(10))\n";
        let (status, header, body) = post(
            url,
            "/code/completion",
            json!({"prefix": prefix, "suffix": suffix, "max_tokens": 64, "temperature": 0}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model"], "qwen-coder");
        assert_eq!(header.unwrap(), "category=code; stage=endpoint; model=qwen-coder");
        let middle = body["text"].as_str().unwrap();
        assert!(middle.contains("return") && middle.contains("fibonacci(n"), "{middle:?}");
        assert!(!middle.contains("```"), "code, not a chat answer: {middle:?}");
        assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() < 40, "only the FIM prompt: {body}");

        // Streamed: chunks, then the whole answer with `done`.
        let r = http()
            .post(format!("{url}/code/completion"))
            .json(&json!({"prefix": prefix, "suffix": suffix, "max_tokens": 16, "temperature": 0, "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let text = r.text().await.unwrap();
        let events: Vec<Value> =
            text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
        let last = events.last().unwrap();
        assert_eq!(last["done"], true, "{text}");
        let joined: String = events[..events.len() - 1].iter().map(|e| e["chunk"].as_str().unwrap()).collect();
        assert_eq!(joined, last["text"].as_str().unwrap());

        // `/code/generation`: code in a fenced block, extracted.
        let (status, _, body) = post(
            url,
            "/code/generation",
            json!({"instruction": "a function that returns the square of a number", "language": "Python", "max_tokens": 80, "temperature": 0}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["category"], "code");
        assert!(body["code"].as_str().is_some_and(|c| c.contains("def ")), "{body}");

        // `/math/solve` and `/translate` answer in their fields (a JSON schema holds the model to them).
        let (status, _, body) = post(url, "/math/solve", json!({"problem": "What is 12 + 30?", "temperature": 0})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["category"], "math");
        assert!(body["answer"].is_string() && body["steps"].is_array(), "{body}");
        let (status, _, body) =
            post(url, "/translate", json!({"text": "Good morning", "target_lang": "French", "temperature": 0})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["category"].as_str(), body["target_lang"].as_str()), (Some("translation"), Some("French")));
        assert!(body["translation"].is_string() && body["source_lang"].is_string(), "{body}");
    });
}

#[test]
fn a_session_without_a_model_is_routed_and_its_message_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let Some(config) = config(dir.path()) else { return };
    let _lock = one_at_a_time();
    let server = TestServer::start(bin(), &["--config", config.to_str().unwrap()]);
    crate::runtime().block_on(async {
        let url = &server.url;
        let (status, _, session) = post(url, "/api/v1/sessions", json!({})).await;
        assert_eq!(status, 201, "{session}");
        let id = session["id"].as_str().unwrap();
        let (status, _, answer) =
            post(url, &format!("/api/v1/sessions/{id}/prompt"), json!({"content": CODE, "max_tokens": 12})).await;
        assert_eq!(status, 200, "{answer}");
        let message = &answer;
        assert_eq!(message["metadata"]["model"], "qwen-coder", "{answer}");
        assert_eq!(message["metadata"]["route"]["category"], "code", "{answer}");
        assert_eq!(message["metadata"]["route"]["stage"], "semantic", "{answer}");
        // The stored message keeps it, and the event log has the decision.
        let messages: Value =
            http().get(format!("{url}/api/v1/sessions/{id}/messages")).send().await.unwrap().json().await.unwrap();
        let last = messages["data"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["metadata"], message["metadata"]);
        let events = http()
            .get(format!("{url}/api/v1/sessions/{id}/events"))
            .header("accept", "text/event-stream")
            .header("last-event-id", "0")
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .unwrap();
        let mut text = String::new();
        let mut body = events.bytes_stream();
        use futures::StreamExt;
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_millis(500), body.next()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(text.contains("event: route.decided"), "{text}");
        assert!(text.contains(r#""model":"qwen-coder""#), "{text}");
    });
}
