//! Bad input is answered in OpenAI's error format with the right status, and
//! API keys guard every route but `/health`.

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::server;

fn post(http: &Client, url: &str, body: &str) -> (u16, Value) {
    let r = http.post(url).header("content-type", "application/json").body(body.to_owned()).send().expect("send");
    let status = r.status().as_u16();
    (status, r.json().expect("an OpenAI error object"))
}

fn assert_error(status: u16, body: &Value, want_status: u16, kind: &str, what: &str) {
    assert_eq!(status, want_status, "{what}: {body}");
    assert_eq!(body["error"]["type"], kind, "{what}: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    assert!(body["error"].get("param").is_some() && body["error"].get("code").is_some(), "{what}: {body}");
}

#[test]
fn bad_input_gets_openai_errors() {
    let srv = server(&["--ctx-size", "256"]);
    let http = Client::new();
    let chat = format!("{}/v1/chat/completions", srv.url);
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("malformed JSON", "{\"messages\": [".into(), None),
        ("wrong type", json!({"messages": "hello"}).to_string(), Some("messages")),
        (
            "wrong type deep",
            json!({"messages": [{"role": "user", "content": 5}]}).to_string(),
            Some("messages[0].content"),
        ),
        ("missing messages", json!({"model": "x"}).to_string(), None),
        ("empty messages", json!({"messages": []}).to_string(), Some("messages")),
        ("negative max_tokens", json!({"messages": user, "max_tokens": -1}).to_string(), Some("max_tokens")),
        ("temperature out of range", json!({"messages": user, "temperature": 9}).to_string(), Some("temperature")),
        (
            "unknown role",
            json!({"messages": [{"role": "wizard", "content": "hi"}]}).to_string(),
            Some("messages[0].role"),
        ),
    ];
    for (what, body, param) in cases {
        let (status, body) = post(&http, &chat, &body);
        assert_error(status, &body, 400, "invalid_request_error", what);
        if let Some(param) = param {
            assert_eq!(body["error"]["param"], param, "{what}: {body}");
        }
    }
    // A prompt over the context: llama-server's type (with its counts), OpenAI's code.
    let long = json!({"messages": [{"role": "user", "content": "word ".repeat(2000)}]}).to_string();
    let (status, body) = post(&http, &chat, &long);
    assert_error(status, &body, 400, "exceed_context_size_error", "prompt longer than the context");
    assert_eq!(
        (body["error"]["param"].as_str(), body["error"]["code"].as_str()),
        (Some("messages"), Some("context_length_exceeded"))
    );
    assert_eq!(body["error"]["n_ctx"], 256, "{body}");
    let (status, body) = post(&http, &chat, &json!({"messages": user, "model": "no-such-model"}).to_string());
    assert_error(status, &body, 404, "invalid_request_error", "unknown model");
    assert_eq!(body["error"]["code"], "model_not_found");
    let r = http.get(format!("{}/v1/models/no-such-model", srv.url)).send().expect("send");
    assert_eq!(r.status().as_u16(), 404);
    let r = http.get(format!("{}/v2/nothing", srv.url)).send().expect("send");
    let status = r.status().as_u16();
    assert_error(status, &r.json().expect("json"), 404, "invalid_request_error", "unknown route");
    let (status, body) = post(&http, &format!("{}/v1/completions", srv.url), &json!({"prompt": 5}).to_string());
    assert_error(status, &body, 400, "invalid_request_error", "completion prompt of the wrong type");
    // The server still serves after all that.
    let (status, _) = post(&http, &chat, &json!({"messages": user, "max_tokens": 2}).to_string());
    assert_eq!(status, 200);
}

#[test]
fn api_keys_guard_every_route_but_health() {
    let srv = server(&["--api-key", "sesame"]);
    let http = Client::new();
    let health = http.get(format!("{}/health", srv.url)).send().expect("health");
    assert_eq!(health.status().as_u16(), 200);
    let routes: [(&str, &str, Option<Value>); 5] = [
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/tiny", None),
        ("GET", "/metrics", None),
        (
            "POST",
            "/v1/chat/completions",
            Some(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})),
        ),
        ("POST", "/v1/completions", Some(json!({"prompt": "hi", "max_tokens": 1}))),
    ];
    for (method, path, body) in routes {
        let url = format!("{}{path}", srv.url);
        let build = |key: Option<&str>| {
            let mut rb =
                if method == "GET" { http.get(&url) } else { http.post(&url).json(body.as_ref().expect("body")) };
            if let Some(k) = key {
                rb = rb.bearer_auth(k);
            }
            rb.send().expect("send")
        };
        for key in [None, Some("wrong")] {
            let r = build(key);
            let status = r.status().as_u16();
            let body: Value = r.json().expect("json");
            assert_error(status, &body, 401, "authentication_error", &format!("{method} {path} with key {key:?}"));
        }
        assert_eq!(build(Some("sesame")).status().as_u16(), 200, "{method} {path} with the right key");
    }
}
