//! The content router from the client side, on the tiny model (no embedding model, so no
//! semantic stage): `chorus route` (a rule's decision, a forced category, `--json`, an unknown
//! category), `--category` of `ask` and `chat` (whose REPL names the answering model on
//! stderr), `Client::route`, the MCP `route` tool, and the LLM stage (`[router] llm_model`).

use std::process::Output;

use chorus_client::ClientError;
use chorus_proto::mcp::RouteResult;
use chorus_proto::route::RouteRequest;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

use crate::cli::text;
use crate::{client, runtime, server};

/// Run `chorus ARGS` with nothing on stdin.
fn chorus(args: &[&str]) -> Output {
    crate::cli::chorus(args, None)
}

#[test]
fn chorus_route_prints_the_decision() {
    let srv = server(&[]);
    let out = chorus(&["route", "translate 'good morning' into French", "--url", &srv.url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"category  translation"), "{stdout}");
    assert!(lines.contains(&"stage     rule"), "{stdout}");
    assert!(lines.contains(&"score     1.00"), "a rule scores 1: {stdout}");
    assert!(lines.contains(&"model     tiny"), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("took      ") && l.ends_with(" ms")), "{stdout}");
    assert!(!stdout.contains("scores"), "no semantic stage, no scores: {stdout}");

    let out = chorus(&["route", "--category", "math", "x", "--url", &srv.url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.lines().any(|l| l == "category  math") && stdout.contains("stage     forced"), "{stdout}");

    let out = chorus(&["route", "--json", "translate 'good morning' into French", "--url", &srv.url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(json["category"], "translation");
    assert_eq!(json["stage"], "rule");
    assert_eq!(json["model"], "tiny");
    assert!(json["header"].as_str().is_some_and(|h| h.starts_with("category=translation; stage=rule")), "{json}");

    let out = chorus(&["route", "--category", "nonsense", "x", "--url", &srv.url]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("nonsense"), "{stderr}");
    for name in ["general", "code", "math", "translation", "image"] {
        assert!(stderr.contains(name), "the message names the categories: {stderr}");
    }

    let out = chorus(&["route", "--url", &srv.url]);
    assert_eq!(out.status.code(), Some(2), "no prompt is a usage error: {}", text(&out.stderr));
}

#[test]
fn ask_and_chat_send_the_category_and_chat_names_the_model_on_stderr() {
    let srv = server(&[]);
    let out = chorus(&["ask", "--url", &srv.url, "--category", "math", "--max-tokens", "3", "Hello"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = chorus(&["ask", "--url", &srv.url, "--category", "nonsense", "--max-tokens", "3", "Hello"]);
    assert_eq!(out.status.code(), Some(1), "the server refuses an unknown category");
    assert!(text(&out.stderr).contains("nonsense"), "{}", text(&out.stderr));

    let out = crate::cli::chorus(
        &["chat", "--url", &srv.url, "--category", "code", "--max-tokens", "3"],
        Some("Hello\nAgain\n/exit\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().filter(|l| *l == "[tiny]").count(), 2, "one model line per answer: {stderr}");
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("[tiny]") && !stdout.trim().is_empty(), "stdout holds the answers only: {stdout}");
}

#[test]
fn the_client_and_the_mcp_tool_route_like_the_cli() {
    let srv = server(&[]);
    runtime().block_on(async {
        let c = client(&srv.url, None);
        let prompt = Some("translate 'thank you' into German".to_owned());
        let request = RouteRequest { prompt, ..RouteRequest::default() };
        let decision = c.route(&request).await.expect("POST /api/v1/route");
        assert_eq!((decision.category.as_str(), decision.stage.as_str()), ("translation", "rule"));
        let forced = RouteRequest { category: Some("math".into()), ..request.clone() };
        assert_eq!(c.route(&forced).await.expect("forced").stage, "forced");
        let unknown = RouteRequest { category: Some("nonsense".into()), ..request };
        let err = c.route(&unknown).await.expect_err("an unknown category");
        let named = matches!(&err, ClientError::Api { status: 400, message, .. } if message.contains("translation"));
        assert!(named, "a 400 naming the categories: {err}");

        let transport = StreamableHttpClientTransport::from_uri(format!("{}/mcp", srv.url));
        let mcp = ().serve(transport).await.expect("initialize");
        let tools = mcp.list_all_tools().await.expect("tools/list");
        let route = tools.iter().find(|t| t.name == "route").expect("a route tool");
        assert_eq!(route.annotations.as_ref().and_then(|a| a.read_only_hint), Some(true));
        assert_eq!(route.input_schema.get("required"), Some(&json!(["prompt"])));
        let description = "Say which category and model chorus's router would send a prompt to, and why (nothing is \
                           generated)";
        assert_eq!(route.description.as_deref(), Some(description));

        let call = |arguments: Value| {
            let Value::Object(arguments) = arguments else { unreachable!() };
            mcp.call_tool(CallToolRequestParams::new("route").with_arguments(arguments))
        };
        let result = call(json!({"prompt": "translate 'good morning' into French"})).await.expect("tools/call");
        assert_eq!(result.is_error, Some(false), "{result:?}");
        let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).expect("text");
        let from_text: RouteResult = serde_json::from_str(&text).expect("the text is the decision as JSON");
        let structured: RouteResult =
            serde_json::from_value(result.structured_content.clone().expect("structured")).expect("its shape");
        assert_eq!(from_text, structured);
        assert_eq!((structured.category.as_str(), structured.stage.as_str()), ("translation", "rule"));
        assert_eq!(structured.model.as_deref(), Some("tiny"));
        assert_eq!(structured.header, "category=translation; stage=rule; score=1.00; model=tiny");

        let forced = call(json!({"prompt": "x", "category": "math"})).await.expect("tools/call");
        let forced: RouteResult = serde_json::from_value(forced.structured_content.expect("structured")).unwrap();
        assert_eq!((forced.category.as_str(), forced.stage.as_str()), ("math", "forced"));

        for bad in [json!({"prompt": "x", "category": "nonsense"}), json!({"prompt": "  "})] {
            let result = call(bad.clone()).await.expect("tools/call");
            assert_eq!(result.is_error, Some(true), "{bad}: {result:?}");
        }
        mcp.cancel().await.expect("close the session");
    });
}

#[test]
fn the_llm_stage_decides_what_the_other_stages_leave_undecided() {
    // No embedding model, so no semantic stage: a prompt no rule matches goes to the LLM,
    // whose answer the grammar holds to one category name (the tiny model's is random).
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("chorus.toml");
    std::fs::write(&config, "[router]\nllm_model = \"tiny\"\n").expect("config");
    let srv = server(&["--config", config.to_str().expect("utf-8")]);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let dry: Value = http
            .post(format!("{}/api/v1/route", srv.url))
            .json(&json!({"prompt": "hello there, how was your weekend"}))
            .send()
            .await
            .expect("route")
            .json()
            .await
            .expect("json");
        assert_eq!(dry["stage"], "llm", "{dry}");
        let names = ["general", "code", "math", "translation", "image"];
        assert!(names.contains(&dry["category"].as_str().expect("category")), "{dry}");
        // A rule still decides before the LLM is asked.
        let ruled: Value = http
            .post(format!("{}/api/v1/route", srv.url))
            .json(&json!({"prompt": "translate 'good morning' into French"}))
            .send()
            .await
            .expect("route")
            .json()
            .await
            .expect("json");
        assert_eq!(ruled["stage"], "rule", "{ruled}");
    });
}
