//! The model pool end to end on the real fixtures: `qwen-coder` and `gemma` (two LLMs) and
//! `minilm` (sentence-transformers embeddings), under a memory budget that holds only one of
//! the two LLMs; and an upstream model served by a second real `chorus serve` (testkit model).
//! Real-model servers run one at a time (the `real_model` lock).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chorus_testkit::server::TestServer;
use serde_json::{Value, json};

use crate::bin;
use crate::real_model::{fixture, one_at_a_time};

/// Holds one of qwen-coder (~1.2 GB with its 32k context) and gemma (~1.4 GB) plus minilm,
/// never both LLMs.
const BUDGET: &str = "2G";

pub(crate) fn minilm() -> Option<PathBuf> {
    let qwen = fixture("CHORUS_QWEN_CODER")?;
    let dir = std::env::var_os("CHORUS_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| qwen.parent().expect("fixture dir").join("all-minilm-l6-v2"));
    if dir.join("config.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: under CI the minilm fixture must be there",
        dir.display()
    );
    eprintln!("skipped: no minilm fixture at {} (scripts/models.sh minilm)", dir.display());
    None
}

/// A chorus.toml registering the three fixtures as `qwen`, `gemma` and `minilm`, with `extra`
/// lines appended to the qwen entry.
fn config(dir: &Path, qwen_extra: &str) -> Option<PathBuf> {
    let qwen = fixture("CHORUS_QWEN_CODER")?;
    let gemma = fixture("CHORUS_GEMMA")?;
    let minilm = minilm()?;
    let text = format!(
        "[[models]]\nid = \"qwen\"\nsource = {:?}\n{qwen_extra}\n\n[[models]]\nid = \"gemma\"\nsource = {:?}\n\n[[models]]\nid = \"minilm\"\nsource = {:?}\n",
        qwen.display().to_string(),
        gemma.display().to_string(),
        minilm.display().to_string()
    );
    let path = dir.join("chorus.toml");
    std::fs::write(&path, text).unwrap();
    Some(path)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(600)).build().unwrap()
}

async fn complete(url: &str, model: &str, extra: Value) -> reqwest::Response {
    let mut body = json!({"model": model, "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    http().post(format!("{url}/v1/completions")).json(&body).send().await.unwrap()
}

async fn states(url: &str) -> Value {
    http().get(format!("{url}/api/v1/models")).send().await.unwrap().json().await.unwrap()
}

fn status_of<'a>(states: &'a Value, id: &str) -> &'a str {
    states["data"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap()["status"].as_str().unwrap()
}

/// A counter or gauge of `/metrics` with exactly these labels; 0 when absent.
async fn metric(url: &str, name: &str, labels: &str) -> f64 {
    let text = http().get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    let prefix = format!("{name}{{{labels}}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn wait_for_status(url: &str, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = states(url).await;
        if status_of(&s, id) == want {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never became {want}: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn alternating_requests_evict_and_reload_and_concurrent_first_requests_load_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(config) = config(dir.path(), "") else { return };
    let _lock = one_at_a_time();
    let server = TestServer::start(bin(), &["--config", config.to_str().unwrap(), "--memory-budget", BUDGET]);
    crate::runtime().block_on(async {
        let url = &server.url;
        let s = states(url).await;
        assert_eq!(s["data"].as_array().unwrap().len(), 3, "{s}");
        let budget = s["memory_budget"].as_u64().unwrap();
        let bytes =
            |id| s["data"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap()["bytes"].as_u64().unwrap();
        assert!(bytes("qwen") + bytes("gemma") > budget && bytes("qwen").max(bytes("gemma")) < budget, "{s}");
        // /v1/models lists them all, loaded or not.
        let listed: Value = http().get(format!("{url}/v1/models")).send().await.unwrap().json().await.unwrap();
        assert_eq!(listed["data"].as_array().unwrap().len(), 3, "{listed}");

        for (i, model) in ["qwen", "gemma", "qwen", "gemma"].into_iter().enumerate() {
            let r = complete(url, model, json!({})).await;
            assert_eq!(r.status(), 200, "request {i} to {model}: {}", r.text().await.unwrap());
            let body: Value = r.json().await.unwrap();
            assert!(!body["choices"][0]["text"].as_str().unwrap().is_empty(), "{body}");
            let s = states(url).await;
            let other = if model == "qwen" { "gemma" } else { "qwen" };
            assert_eq!(status_of(&s, model), "loaded", "{s}");
            assert_ne!(status_of(&s, other), "loaded", "both LLMs loaded within {BUDGET}: {s}");
            assert!(s["memory_used"].as_u64().unwrap() <= s["memory_budget"].as_u64().unwrap(), "{s}");
        }
        assert!(metric(url, "chorus_model_unloads_total", r#"model="qwen",reason="evicted""#).await >= 1.0);
        assert!(metric(url, "chorus_model_unloads_total", r#"model="gemma",reason="evicted""#).await >= 1.0);

        // qwen is unloaded now (gemma took its room): four first requests at once, one load.
        let loads = metric(url, "chorus_model_loads_total", r#"model="qwen",result="ok""#).await;
        let answers = futures::future::join_all((0..4).map(|_| complete(url, "qwen", json!({})))).await;
        for r in answers {
            assert_eq!(r.status(), 200);
        }
        let after = metric(url, "chorus_model_loads_total", r#"model="qwen",result="ok""#).await;
        assert_eq!(after, loads + 1.0, "4 concurrent first requests loaded qwen {} times", after - loads);
    });
}

#[test]
fn keep_alive_zero_unloads_and_a_pinned_model_stays() {
    let dir = tempfile::tempdir().unwrap();
    let Some(config) = config(dir.path(), "pinned = true") else { return };
    let _lock = one_at_a_time();
    let server = TestServer::start(bin(), &["--config", config.to_str().unwrap(), "--memory-budget", BUDGET]);
    crate::runtime().block_on(async {
        let url = &server.url;
        // Pinned models load at start.
        assert_eq!(status_of(&states(url).await, "qwen"), "loaded");
        // gemma cannot fit beside the pinned qwen: refused at once, with the numbers.
        let r = complete(url, "gemma", json!({})).await;
        assert_eq!(r.status(), 503);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "insufficient_memory", "{e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains("pinned") && message.contains("qwen") && message.contains("MiB"), "{message}");
        // keep_alive 0 on the pinned model does not unload it.
        assert_eq!(complete(url, "qwen", json!({"keep_alive": 0})).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(status_of(&states(url).await, "qwen"), "loaded");
        // On minilm (not pinned) it does: the model leaves once the answer is done.
        let r = http()
            .post(format!("{url}/v1/embeddings"))
            .json(&json!({"model": "minilm", "input": "hello", "keep_alive": "0s"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        wait_for_status(url, "minilm", "unloaded").await;
        assert!(metric(url, "chorus_model_unloads_total", r#"model="minilm",reason="requested""#).await >= 1.0);
        // A duration that does not parse is a 400 on keep_alive.
        let r = complete(url, "qwen", json!({"keep_alive": "soon"})).await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "keep_alive");
    });
}

#[test]
fn a_model_too_big_for_the_budget_is_refused_at_start_with_numbers() {
    let Some(qwen) = fixture("CHORUS_QWEN_CODER") else { return };
    let out = std::process::Command::new(bin())
        .args(["serve", "--port", "0", "--no-control-socket", "--memory-budget", "300M", "--model"])
        .arg(&qwen)
        .env("CHORUS_DATA_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs about") && stderr.contains("memory budget is") && stderr.contains("MiB"),
        "{stderr}"
    );
    assert!(stderr.contains("--memory-budget"), "says what to do: {stderr}");
}

/// The reference vectors sentence-transformers computed for minilm (crates/chorus-embed).
fn reference() -> Vec<(String, Vec<f32>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../chorus-embed/tests/data/minilm_reference.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    data["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["n_tokens_untruncated"].as_u64().unwrap() <= 256)
        .map(|i| {
            let v = i["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            (i["text"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn embeddings_match_sentence_transformers_in_both_encodings() {
    let Some(minilm) = minilm() else { return };
    let _lock = one_at_a_time();
    let server = TestServer::start(bin(), &["--model", minilm.to_str().unwrap()]);
    crate::runtime().block_on(async {
        let url = &server.url;
        let reference = reference();
        let texts: Vec<&str> = reference.iter().map(|(t, _)| t.as_str()).collect();
        for format in ["float", "base64"] {
            let r = http()
                .post(format!("{url}/v1/embeddings"))
                .json(&json!({"model": "all-minilm-l6-v2", "input": texts, "encoding_format": format}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["object"], "list");
            assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > texts.len() as u64, "{}", body["usage"]);
            for (i, (text, want)) in reference.iter().enumerate() {
                let item = &body["data"][i];
                assert_eq!(item["index"], i);
                let got: Vec<f32> = match format {
                    "float" => {
                        item["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
                    }
                    _ => base64::engine::general_purpose::STANDARD
                        .decode(item["embedding"].as_str().unwrap())
                        .unwrap()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                };
                assert_eq!(got.len(), 384);
                let c = cosine(&got, want);
                assert!(c >= 0.999, "{format} {text:?}: cosine {c}");
            }
        }
        // dimensions: cut and renormalised; more than the model has is a 400.
        let body: Value = http()
            .post(format!("{url}/v1/embeddings"))
            .json(&json!({"model": "all-minilm-l6-v2", "input": texts[0], "dimensions": 64}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let v: Vec<f64> =
            body["data"][0]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(v.len(), 64);
        assert!((v.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).abs() < 1e-4);
        let r = http()
            .post(format!("{url}/v1/embeddings"))
            .json(&json!({"model": "all-minilm-l6-v2", "input": "x", "dimensions": 385}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "dimensions");
        // Over the model's 256 tokens: a 400 unless truncate is asked for.
        let long = "word ".repeat(400);
        let r = http()
            .post(format!("{url}/v1/embeddings"))
            .json(&json!({"model": "all-minilm-l6-v2", "input": long}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "context_length_exceeded");
        let r = http()
            .post(format!("{url}/v1/embeddings"))
            .json(&json!({"model": "all-minilm-l6-v2", "input": long, "truncate": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["usage"]["prompt_tokens"], 256);
        // A chat model's endpoint on an embedding model is a 400, not a 500.
        let r = http()
            .post(format!("{url}/v1/chat/completions"))
            .json(&json!({"model": "all-minilm-l6-v2", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "model_not_supported");
    });
}

#[test]
fn an_upstream_chorus_answers_plain_and_streamed_and_its_failure_is_mapped() {
    let mut upstream = crate::server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chorus.toml");
    let tiny = chorus_testkit::tiny_model_path();
    std::fs::write(
        &config,
        format!(
            "[[models]]\nid = \"local\"\nsource = {:?}\nctx_size = 4096\n\n[[models]]\nid = \"remote\"\nupstream_model = \"tiny\"\nurl = {:?}\n",
            tiny.display().to_string(),
            upstream.url
        ),
    )
    .unwrap();
    let front = TestServer::start(bin(), &["--config", config.to_str().unwrap(), "--threads", "2"]);
    crate::runtime().block_on(async {
        let url = &front.url;
        let chat = json!({"model": "remote", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});
        let r = http().post(format!("{url}/v1/chat/completions")).json(&chat).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["model"], "remote");
        assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{body}");
        let mut streamed = chat.clone();
        streamed["stream"] = json!(true);
        let text = http()
            .post(format!("{url}/v1/chat/completions"))
            .json(&streamed)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("chat.completion.chunk") && text.trim_end().ends_with("data: [DONE]"), "{text}");
        // A session on the upstream model runs its agent loop there like on a local model.
        let c = crate::client(url, None);
        let session = c
            .create_session(&chorus_proto::native::CreateSessionRequest {
                model: Some("remote".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let answer = c.prompt(&session.id, &crate::sessions::prompt("Say hi", 6)).await.unwrap();
        assert_eq!(answer.role, "assistant", "{answer:?}");
        assert!(answer.usage.as_ref().is_some_and(|u| u.completion_tokens > 0), "{answer:?}");
        // A bad request is a 400 (checked here before it would go upstream).
        let mut bad = chat.clone();
        bad["max_tokens"] = json!(-1);
        let r = http().post(format!("{url}/v1/chat/completions")).json(&bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
        // The upstream goes away: an OpenAI error object, a 503, not a hang or a 500.
        upstream.signal("KILL");
        upstream.wait(Duration::from_secs(10));
        let r = http().post(format!("{url}/v1/chat/completions")).json(&chat).send().await.unwrap();
        assert_eq!(r.status(), 503);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "upstream_error", "{e}");
        assert_eq!(e["error"]["type"], "server_error", "{e}");
    });
}

#[test]
fn a_bad_models_entry_stops_serve_naming_the_file_the_entry_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chorus.toml");
    let tiny = chorus_testkit::tiny_model_path();
    std::fs::write(
        &config,
        format!(
            "[[models]]\nid = \"tiny\"\nsource = {:?}\ncapabilities = [\"chat\", \"telepathy\"]\n",
            tiny.display().to_string()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--port", "0", "--no-control-socket", "--config"])
        .arg(&config)
        .env("CHORUS_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&config.display().to_string()), "names the file: {stderr}");
    assert!(stderr.contains("[[models]] entry 1 (`tiny`)"), "names the entry: {stderr}");
    assert!(stderr.contains("unknown capability `telepathy`"), "says why: {stderr}");
}
