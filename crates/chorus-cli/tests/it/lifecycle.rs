//! Server lifecycle: a client that leaves frees its sequence, a public bind
//! without a key is refused, and SIGTERM ends in-flight streams cleanly.

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use crate::{bin, chat, client, runtime, server};

fn completion_tokens_total(url: &str) -> u64 {
    let text = reqwest::blocking::get(format!("{url}/metrics")).and_then(|r| r.text()).expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("chorus_completion_tokens_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("chorus_completion_tokens_total")
}

#[test]
fn a_client_that_disconnects_frees_its_sequence() {
    let srv = server(&[]);
    runtime().block_on(async {
        let c = client(&srv.url, None);
        let mut req = chat("Go on forever", 3000);
        req.sampling.ignore_eos = Some(true);
        let mut stream = c.chat_stream(&req).await.expect("stream");
        for _ in 0..3 {
            stream.next().await.expect("a chunk").expect("chunk ok");
        }
        drop(stream);
        let start = Instant::now();
        loop {
            let h = c.health().await.expect("health");
            if h.slots.busy == 0 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the sequence was not freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let generated = completion_tokens_total(&srv.url);
    assert!(generated < 3000, "generation stopped early when the client left ({generated} tokens)");
}

#[test]
fn a_public_bind_without_a_key_is_refused() {
    let model = chorus_testkit::tiny_model_path();
    let out = Command::new(bin())
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--model"])
        .arg(&model)
        .env_remove("CHORUS_API_KEY")
        .output()
        .expect("run chorus serve");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without an API key") && stderr.contains("--api-key"), "{stderr}");
}

#[test]
fn sigterm_ends_in_flight_streams_cleanly_and_exits_zero() {
    let mut srv = server(&["--shutdown-timeout", "1"]);
    let body = json!({
        "messages": [{"role": "user", "content": "Talk for a long time"}],
        "max_tokens": 3500, "ignore_eos": true, "stream": true
    });
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/chat/completions", srv.url))
        .json(&body)
        .send()
        .expect("stream");
    let mut lines = BufReader::new(r).lines();
    let first = lines.next().expect("a first event").expect("read");
    assert!(first.starts_with("data: "), "{first}");
    srv.signal("TERM");
    let rest: Vec<String> = lines.map_while(Result::ok).filter(|l| l.starts_with("data: ")).collect();
    assert_eq!(rest.last().map(String::as_str), Some("data: [DONE]"), "the stream ends with [DONE]");
    let status = srv.wait(Duration::from_secs(30)).expect("the server exits");
    assert_eq!(status.code(), Some(0), "stderr: {}", srv.stderr());
    // It no longer accepts connections.
    assert!(reqwest::blocking::get(format!("{}/health", srv.url)).is_err());
}
