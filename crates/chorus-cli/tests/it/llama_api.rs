//! llama-server's native endpoints and its unprefixed OpenAI routes, on the tiny model: what
//! llama-server's own clients and server tests send (llama.cpp `tools/server/README.md`).

use serde_json::{Value, json};

use crate::server;

async fn post(url: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("{url}{path}")).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get(url: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{url}{path}")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn tokenize_detokenize_and_pieces() {
    let srv = server(&[]);
    let url = &srv.url;
    let content = "What is the capital of France ?";
    let (status, tok) = post(url, "/tokenize", json!({"content": content})).await;
    assert_eq!(status, 200, "{tok}");
    let ids: Vec<i64> = tok["tokens"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
    assert!(ids.len() > 5, "{tok}");
    let (status, detok) = post(url, "/detokenize", json!({"tokens": ids})).await;
    assert_eq!(status, 200);
    assert_eq!(detok["content"].as_str().unwrap().trim(), content);

    // A character of three bytes is split into byte tokens: their pieces are bytes, not text.
    let (_, pieces) = post(url, "/tokenize", json!({"content": "a 媽", "with_pieces": true})).await;
    let pieces = pieces["tokens"].as_array().unwrap().clone();
    assert_eq!(pieces[0]["piece"], "a", "{pieces:?}");
    let bytes: Vec<u8> = pieces[2..]
        .iter()
        .flat_map(|p| p["piece"].as_array().unwrap().clone())
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(bytes, "媽".as_bytes(), "{pieces:?}");
    assert!(pieces.iter().all(|p| p["id"].as_i64().unwrap() > 0));

    // Special tokens written in the text are parsed unless parse_special is false.
    let (_, special) = post(url, "/tokenize", json!({"content": "<|im_start|>"})).await;
    let (_, plain) = post(url, "/tokenize", json!({"content": "<|im_start|>", "parse_special": false})).await;
    assert_eq!(special["tokens"].as_array().unwrap().len(), 1, "{special}");
    assert!(plain["tokens"].as_array().unwrap().len() > 1, "{plain}");

    // Bad input: a 400 in OpenAI's error shape naming the field.
    let (status, err) = post(url, "/detokenize", json!({"tokens": [1, 99_999_999]})).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "tokens", "{err}");
    let (status, err) = post(url, "/tokenize", json!({})).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("content"), "{err}");
    let (status, _) = post(url, "/tokenize", json!({"content": "x", "model": "nope"})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn props_apply_template_and_routes_without_v1() {
    let srv = server(&["--ctx-size", "512", "--parallel", "2", "--no-kv-unified"]);
    let url = &srv.url;
    let (status, props) = get(url, "/props").await;
    assert_eq!(status, 200, "{props}");
    assert_eq!(props["total_slots"], 2);
    assert_eq!(props["default_generation_settings"]["n_ctx"], 256, "512 tokens over 2 slots: {props}");
    assert!(props["model_path"].as_str().unwrap().ends_with(".gguf"));
    assert_eq!(props["model_alias"], "tiny");
    assert!(props["chat_template"].as_str().unwrap().contains("im_start"));
    assert_eq!(props["default_generation_settings"]["params"]["seed"], u64::from(u32::MAX));

    let (status, rendered) =
        post(url, "/apply-template", json!({"messages": [{"role": "user", "content": "Hello there"}]})).await;
    assert_eq!(status, 200, "{rendered}");
    assert_eq!(rendered["prompt"], "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n");
    let (status, err) = post(url, "/apply-template", json!({"messages": []})).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "messages");

    // llama-server serves the OpenAI routes without /v1 too.
    let (status, models) = get(url, "/models").await;
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "tiny");
    let (status, chat) =
        post(url, "/chat/completions", json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})).await;
    assert_eq!(status, 200, "{chat}");
    assert_eq!(chat["object"], "chat.completion");
    // llama-server's timings beside OpenAI's usage.
    let t = &chat["timings"];
    assert_eq!(t["predicted_n"], chat["usage"]["completion_tokens"], "{chat}");
    assert_eq!(
        t["prompt_n"].as_u64().unwrap() + t["cache_n"].as_u64().unwrap(),
        chat["usage"]["prompt_tokens"].as_u64().unwrap(),
        "{chat}"
    );
    assert!(t["prompt_ms"].as_f64().unwrap() > 0.0 && t["predicted_per_second"].as_f64().unwrap() > 0.0, "{chat}");
    // Streamed, on the chunk with finish_reason and on the usage chunk.
    let body = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": true,
            "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let with_timings: Vec<&Value> = chunks.iter().filter(|c| c.get("timings").is_some()).collect();
    assert_eq!(with_timings.len(), 2, "{body}");
    assert!(with_timings[0]["choices"][0]["finish_reason"].is_string(), "{body}");
    assert!(with_timings[1]["usage"].is_object(), "{body}");
    let (status, text) = post(url, "/completions", json!({"prompt": "Once upon", "max_tokens": 4})).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text["object"], "text_completion");
}
