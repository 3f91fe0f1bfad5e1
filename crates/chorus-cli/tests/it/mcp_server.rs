//! chorus as an MCP server: the real server's `/mcp` driven by `rmcp`'s streamable HTTP client
//! (initialize, tools, resources, prompts, progress, cancellation, a client that goes away while
//! its session prompt runs), the same through `chorus mcp`'s bridge, and raw HTTP for its Host,
//! Origin and API-key checks.

use std::time::{Duration, Instant};

use chorus_client::{EventItem, SessionEvent};
use chorus_proto::mcp::{ChatResult, ModelList, SessionList, SessionPromptResult, SessionResource};
use chorus_proto::native::{CreateSessionRequest, Event, Priority, PromptRequest, SessionStatus};
use futures::StreamExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, ErrorCode, GetPromptRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, Request, ResourceContents,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestHandle, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::tools::{notes_dir, read_notes, scripted_server, session_in};
use crate::{client, runtime, server};

/// An MCP client that hands the progress notifications it gets to a channel.
struct Watcher {
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
}

impl ClientHandler for Watcher {
    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        let _ = self.progress.send(params);
    }
}

type Mcp = RunningService<RoleClient, Watcher>;

/// Connect (and initialize) to `url`'s `/mcp`, with the API key when given.
async fn connect(url: &str, key: Option<&str>) -> (Mcp, mpsc::UnboundedReceiver<ProgressNotificationParam>) {
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp"));
    if let Some(key) = key {
        config = config.auth_header(key);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let mcp =
        Watcher { progress: tx }.serve(StreamableHttpClientTransport::from_config(config)).await.expect("initialize");
    (mcp, rx)
}

fn args(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, not {other}"),
    }
}

async fn call(mcp: &Mcp, tool: &'static str, arguments: Value) -> CallToolResult {
    mcp.call_tool(CallToolRequestParams::new(tool).with_arguments(args(arguments))).await.expect("tools/call")
}

/// Start a `tools/call` that the test can cancel (its handle carries the progress token).
async fn call_cancellable(mcp: &Mcp, tool: &'static str, arguments: Value) -> RequestHandle<RoleClient> {
    let params = CallToolRequestParams::new(tool).with_arguments(args(arguments));
    mcp.send_cancellable_request(ClientRequest::CallToolRequest(Request::new(params)), PeerRequestOptions::no_options())
        .await
        .expect("tools/call sent")
}

fn text(result: &CallToolResult, index: usize) -> &str {
    result.content.get(index).and_then(|c| c.as_text()).map(|t| t.text.as_str()).expect("a text content block")
}

fn structured<T: serde::de::DeserializeOwned>(result: &CallToolResult) -> T {
    serde_json::from_value(result.structured_content.clone().expect("structured content")).expect("its shape")
}

fn resource_text(contents: &[ResourceContents]) -> &str {
    match contents.first() {
        Some(ResourceContents::TextResourceContents { text, mime_type, .. }) => {
            assert_eq!(mime_type.as_deref(), Some("application/json"));
            text
        }
        other => panic!("expected one text resource, got {other:?}"),
    }
}

fn error_code(e: ServiceError) -> ErrorCode {
    match e {
        ServiceError::McpError(e) => e.code,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

#[test]
fn an_mcp_client_initializes_calls_tools_reads_resources_and_gets_prompts() {
    let srv = server(&[]);
    runtime().block_on(async {
        let (mcp, mut progress) = connect(&srv.url, None).await;
        let info = mcp.peer_info().expect("the server's initialize result");
        assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("chorus"));
        let caps = &info.capabilities;
        assert!(caps.tools.is_some() && caps.resources.is_some() && caps.prompts.is_some(), "{caps:?}");

        let tools = mcp.list_all_tools().await.expect("tools/list");
        let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        names.sort_unstable();
        assert_eq!(names, ["chat", "list_models", "list_sessions", "route", "session_prompt"]);
        let chat = tools.iter().find(|t| t.name == "chat").expect("chat");
        assert_eq!(chat.annotations.as_ref().and_then(|a| a.read_only_hint), Some(true));
        assert_eq!(chat.input_schema.get("required"), Some(&json!(["prompt"])));
        assert!(chat.output_schema.is_some(), "chat has an output schema");

        // chat: the model's text, with progress along the way (rmcp sends a progress token).
        let result =
            call(&mcp, "chat", json!({"prompt": "Tell me about the sea", "max_tokens": 12, "temperature": 0})).await;
        assert_eq!(result.is_error, Some(false));
        let answer = text(&result, 0).to_owned();
        assert!(!answer.is_empty());
        let done: ChatResult = structured(&result);
        assert_eq!(
            (done.text.as_str(), done.model.as_str(), done.finish_reason.as_str()),
            (answer.as_str(), "tiny", "length")
        );
        assert_eq!(done.usage.completion_tokens, 12);
        // rmcp's client may hand notifications to the handler out of order: look at all of them.
        let mut seen = vec![progress.recv().await.expect("a progress notification")];
        while let Ok(Some(more)) = tokio::time::timeout(std::time::Duration::from_secs(2), progress.recv()).await {
            seen.push(more);
        }
        let mut steps: Vec<(f64, Option<f64>)> = seen.iter().map(|p| (p.progress, p.total)).collect();
        steps.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(steps[0], (1.0, Some(12.0)), "progress starts at the first piece: {steps:?}");
        // The same greedy prompt gives the same answer, as over the OpenAI API.
        let again =
            call(&mcp, "chat", json!({"prompt": "Tell me about the sea", "max_tokens": 12, "temperature": 0})).await;
        assert_eq!(text(&again, 0), answer);

        // Bad arguments: a tool error the model can read, or invalid params when they do not parse.
        let bad = call(&mcp, "chat", json!({"prompt": "hi", "temperature": 3})).await;
        assert_eq!(bad.is_error, Some(true));
        assert!(text(&bad, 0).contains("temperature"), "{}", text(&bad, 0));
        let bad = call(&mcp, "chat", json!({"prompt": "hi", "model": "nope"})).await;
        assert!(bad.is_error == Some(true) && text(&bad, 0).contains("list_models"), "{bad:?}");
        let bad = call(&mcp, "chat", json!({"prompt": "hi", "temprature": 1})).await;
        assert!(bad.is_error == Some(true) && text(&bad, 0).contains("temprature"), "{bad:?}");
        let bad = call(&mcp, "chat", json!({"max_tokens": 1})).await;
        assert!(bad.is_error == Some(true) && text(&bad, 0).contains("prompt"), "{bad:?}");
        let nope = CallToolRequestParams::new("no_such_tool").with_arguments(args(json!({})));
        assert!(matches!(mcp.call_tool(nope).await, Err(ServiceError::McpError(_))));

        // session_prompt: a new session, then the same one continued.
        let first = call(&mcp, "session_prompt", json!({"prompt": "Hello there", "max_tokens": 4})).await;
        assert_eq!(first.is_error, Some(false), "{first:?}");
        let first: SessionPromptResult = structured(&first);
        let second = call(
            &mcp,
            "session_prompt",
            json!({"prompt": "And again", "session_id": first.session_id, "max_tokens": 4}),
        )
        .await;
        assert!(text(&second, 1).contains(&first.session_id), "the session id is in the text too");
        let second: SessionPromptResult = structured(&second);
        assert_eq!(second.session_id, first.session_id);
        let other_agent = call(
            &mcp,
            "session_prompt",
            json!({"prompt": "x", "session_id": first.session_id, "agent": "someone-else"}),
        )
        .await;
        assert_eq!(other_agent.is_error, Some(true));
        let missing = call(&mcp, "session_prompt", json!({"prompt": "x", "session_id": "ses_missing"})).await;
        assert!(missing.is_error == Some(true) && text(&missing, 0).contains("not found"), "{missing:?}");

        let listed = call(&mcp, "list_sessions", json!({})).await;
        let listed: SessionList = structured(&listed);
        let summary = listed.sessions.iter().find(|s| s.id == first.session_id).expect("the session is listed");
        assert_eq!(summary.title, "Hello there");
        assert_eq!(summary.message_count, 4);
        let models: ModelList = structured(&call(&mcp, "list_models", json!({})).await);
        assert_eq!(models.models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["tiny"]);

        // Resources: the session with its transcript, the model.
        let resources = mcp.list_all_resources().await.expect("resources/list");
        let session_uri = format!("chorus://sessions/{}", first.session_id);
        let session = resources.iter().find(|r| r.uri == session_uri).expect("the session is a resource");
        assert_eq!(session.name, "Hello there");
        assert!(resources.iter().any(|r| r.uri == "chorus://models/tiny"));
        let templates = mcp.list_all_resource_templates().await.expect("resources/templates/list");
        let mut templates: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
        templates.sort_unstable();
        assert_eq!(templates, ["chorus://models/{id}", "chorus://sessions/{id}"]);

        let read = mcp.read_resource(ReadResourceRequestParams::new(&session_uri)).await.expect("resources/read");
        let transcript: SessionResource = serde_json::from_str(resource_text(&read.contents)).expect("a session");
        assert_eq!(transcript.session.id, first.session_id);
        let roles: Vec<&str> = transcript.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
        assert_eq!(transcript.messages[0].content, "Hello there");
        assert_eq!(transcript.messages[3].content, second.text);
        let read = mcp.read_resource(ReadResourceRequestParams::new("chorus://models/tiny")).await.expect("the model");
        let model: Value = serde_json::from_str(resource_text(&read.contents)).expect("json");
        assert_eq!(model["id"], "tiny");
        assert!(model["n_ctx"].as_u64().is_some_and(|n| n > 0));
        for missing in ["chorus://sessions/ses_missing", "chorus://models/nope", "file:///etc/passwd"] {
            let err = mcp.read_resource(ReadResourceRequestParams::new(missing)).await.unwrap_err();
            assert_eq!(error_code(err), ErrorCode::RESOURCE_NOT_FOUND, "{missing}");
        }

        // Prompts: the agents' system prompts.
        let prompts = mcp.list_all_prompts().await.expect("prompts/list");
        let agents: Value = reqwest::get(format!("{}/api/v1/agents", srv.url)).await.unwrap().json().await.unwrap();
        let agent = &agents["data"][0];
        let name = agent["name"].as_str().expect("the default agent's name");
        assert!(prompts.iter().any(|p| p.name == name), "{prompts:?}");
        let prompt = mcp.get_prompt(GetPromptRequestParams::new(name)).await.expect("prompts/get");
        let message = prompt.messages.first().expect("one message");
        assert_eq!(message.content.as_text().map(|t| t.text.as_str()), agent["system_prompt"].as_str());
        let err = mcp.get_prompt(GetPromptRequestParams::new("no-such-agent")).await.unwrap_err();
        assert_eq!(error_code(err), ErrorCode::INVALID_PARAMS);

        mcp.cancel().await.expect("close the session");
    });
}

#[test]
fn host_and_origin_are_checked_before_the_api_key() {
    let srv = server(&["--api-key", "sesame"]);
    let port = srv.url.rsplit(':').next().expect("a port").to_owned();
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    });
    let http = reqwest::blocking::Client::new();
    let post = |host: Option<&str>, origin: Option<&str>, key: Option<&str>| {
        let mut request = http
            .post(format!("{}/mcp", srv.url))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().expect("a response");
        let status = response.status().as_u16();
        (status, response.text().unwrap_or_default())
    };
    let evil = "evil.example.com";
    let local = format!("127.0.0.1:{port}");

    let (status, body) = post(Some(evil), None, Some("sesame"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("permission_denied") && body.contains("Host"), "{body}");
    assert_eq!(post(Some(evil), None, None).0, 403, "Host is checked before the key");
    assert_eq!(post(Some(&local), Some(&format!("http://{evil}")), Some("sesame")).0, 403);
    assert_eq!(post(Some(&local), Some("http://localhost:1"), Some("sesame")).0, 403, "another port is another site");
    let (status, body) = post(Some(&local), None, None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid_api_key"), "{body}");
    assert_eq!(post(Some(&local), None, Some("wrong")).0, 401);
    let (status, body) = post(Some(&local), Some(&format!("http://{local}")), Some("sesame"));
    assert_eq!(status, 200, "{body}");
    let (status, _) =
        post(Some(&format!("localhost:{port}")), Some(&format!("http://localhost:{port}")), Some("sesame"));
    assert_eq!(status, 200);

    // A real client with the key.
    runtime().block_on(async {
        let (mcp, _) = connect(&srv.url, Some("sesame")).await;
        assert_eq!(mcp.list_all_tools().await.expect("tools/list").len(), 5);
        mcp.cancel().await.expect("close the session");
    });
}

async fn completion_tokens_total(url: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics")).await.expect("metrics").text().await.expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("chorus_completion_tokens_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("chorus_completion_tokens_total")
}

/// Wait (at most 60 s) until no slot decodes.
async fn slots_idle(c: &chorus_client::Client) {
    let start = Instant::now();
    while c.health().await.expect("health").slots.busy != 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the sequence was not freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn cancelling_a_chat_stops_its_generation_and_frees_the_slot() {
    let srv = server(&[]);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        let (mcp, mut progress) = connect(&srv.url, None).await;
        let prompt = "Go on forever";
        // Greedy decoding is deterministic: this prompt's answer does not end by itself within
        // 1,000 tokens, so the cancelled call below would generate all of them.
        let request = json!({"prompt": prompt, "max_tokens": 1000, "temperature": 0});
        let full: ChatResult = structured(&call(&mcp, "chat", request.clone()).await);
        assert_eq!(full.finish_reason, "length");
        while progress.try_recv().is_ok() {}
        let before = completion_tokens_total(&srv.url).await;

        let handle = call_cancellable(&mcp, "chat", request).await;
        let first = progress.recv().await.expect("progress: it generates");
        assert_eq!(first.progress_token, handle.progress_token);
        handle.cancel(Some("the user stopped it".into())).await.expect("notifications/cancelled");
        slots_idle(&c).await;
        let generated = completion_tokens_total(&srv.url).await - before;
        assert!(generated < 1000, "generation stopped when the call was cancelled ({generated} tokens)");
        mcp.cancel().await.expect("close the session");
    });
}

fn long_prompt(content: &str) -> PromptRequest {
    PromptRequest {
        content: content.into(),
        stream: false,
        is_async: false,
        priority: Priority::Normal,
        max_tokens: Some(100_000),
        ignore_eos: true,
        tool_choice: None,
    }
}

#[test]
fn cancelling_a_session_prompt_cancels_that_prompt_only() {
    let srv = server(&[]);
    let c = client(&srv.url, None);
    runtime().block_on(async {
        let (mcp, mut progress) = connect(&srv.url, None).await;
        // Another client keeps the session busy; the MCP prompt waits behind it.
        let session = c.create_session(&CreateSessionRequest::default()).await.unwrap();
        let running = c.prompt_async(&session.id, &long_prompt("Go on")).await.unwrap();
        assert_eq!(running.status, "running");
        let handle = call_cancellable(
            &mcp,
            "session_prompt",
            json!({"prompt": "Me next", "session_id": session.id, "max_tokens": 4}),
        )
        .await;
        let start = Instant::now();
        while c.session(&session.id).await.unwrap().queue_length != 1 {
            assert!(start.elapsed() < Duration::from_secs(60), "the MCP prompt was not queued");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.cancel(None).await.expect("notifications/cancelled");
        let start = Instant::now();
        while c.session(&session.id).await.unwrap().queue_length != 0 {
            assert!(start.elapsed() < Duration::from_secs(60), "the cancelled MCP prompt is still queued");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The other client's prompt runs on.
        let still = c.session(&session.id).await.unwrap();
        assert_eq!(still.status, SessionStatus::Busy);

        // A running MCP prompt: cancelled once it has said something, that text stored.
        c.cancel(&session.id).await.unwrap();
        slots_idle(&c).await;
        while progress.try_recv().is_ok() {}
        let handle =
            call_cancellable(&mcp, "session_prompt", json!({"prompt": "Go on", "session_id": session.id})).await;
        let first = progress.recv().await.expect("progress: the answer streams");
        assert_eq!(first.progress_token, handle.progress_token);
        handle.cancel(None).await.expect("notifications/cancelled");
        let start = Instant::now();
        let status = loop {
            let status = c.session(&session.id).await.unwrap().status;
            if status != SessionStatus::Busy {
                break status;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "the MCP prompt was not cancelled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        slots_idle(&c).await;
        let messages = c.messages(&session.id).await.unwrap();
        let last = messages.last().expect("messages");
        // The sampled answer is cut short, unless the model happened to end it in the moment
        // before the cancellation arrived.
        if status == SessionStatus::Cancelled {
            assert_eq!(last.finish_reason.as_deref(), Some("cancelled"));
        } else {
            assert_eq!(status, SessionStatus::Idle);
        }
        mcp.cancel().await.expect("close the session");
    });
}

#[test]
fn an_idle_mcp_client_does_not_hold_the_shutdown_and_a_running_call_finishes() {
    // A shutdown timeout far longer than the test waits: the server stops because its MCP
    // sessions close once the call in flight is answered, not because that timeout passed.
    let mut srv = server(&["--shutdown-timeout", "600"]);
    // One runtime for the whole test: the clients' tasks run on it.
    let rt = runtime();
    let (mcp, call) = rt.block_on(async {
        // One client is idle between calls (its GET stream stays open); the other is answering.
        let (idle, _) = connect(&srv.url, None).await;
        idle.list_all_tools().await.expect("tools/list");
        let (busy, mut progress) = connect(&srv.url, None).await;
        let handle =
            call_cancellable(&busy, "chat", json!({"prompt": "Go on forever", "max_tokens": 500, "temperature": 0}))
                .await;
        progress.recv().await.expect("it generates");
        ((idle, busy), handle)
    });
    srv.signal("TERM");
    let answer = rt.block_on(async { tokio::time::timeout(Duration::from_secs(120), call.await_response()).await });
    match answer {
        Ok(Ok(rmcp::model::ServerResult::CallToolResult(result))) => {
            let done: ChatResult = structured(&result);
            assert_eq!(done.usage.completion_tokens, 500, "the call in flight finished");
        }
        other => panic!("the call in flight was not answered: {other:?}"),
    }
    let status = srv.wait(Duration::from_secs(120)).expect("the open MCP streams held the shutdown");
    assert!(status.success(), "{status:?}");
    drop(mcp);
}

/// A session on the scripted model whose prompt waits for the permission of its `read_file`
/// call (`ask`) until the test answers it, so prompts sent after it wait in the queue for as
/// long as the test needs. Returns the session's id and the permission request's.
async fn blocked_session(c: &chorus_client::Client, work_dir: &std::path::Path) -> (String, String) {
    let id = session_in(c, work_dir).await;
    let mut events = c.events(Some(&id), None).await.unwrap();
    c.prompt_async(&id, &read_notes()).await.unwrap();
    let request = loop {
        let item = tokio::time::timeout(Duration::from_secs(60), events.next()).await.expect("a permission request");
        if let Some(Ok(EventItem::Event(SessionEvent {
            event: Event::ToolPermissionRequest { request_id, .. }, ..
        }))) = item
        {
            break request_id;
        }
    };
    (id, request)
}

/// Send `session_prompt` to the blocked session `id` and wait until it is queued there.
async fn queue_session_prompt(mcp: &Mcp, c: &chorus_client::Client, id: &str) -> RequestHandle<RoleClient> {
    let handle =
        call_cancellable(mcp, "session_prompt", json!({"prompt": "Me next", "session_id": id, "max_tokens": 16})).await;
    let start = Instant::now();
    while c.session(id).await.unwrap().queue_length != 1 {
        assert!(start.elapsed() < Duration::from_secs(60), "the MCP prompt was not queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle
}

/// The MCP client that sent the prompt queued in `id` has gone away: the prompt stays queued, runs
/// once the blocking prompt's permission (`request`) is answered, and its answer is stored.
async fn answered_without_its_client(url: &str, c: &chorus_client::Client, id: &str, request: &str) {
    // rmcp ends an MCP session's requests once their handlers have had 5 s to answer after it
    // closed: a prompt cancelled with its client would be dropped from the queue by then.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(7) {
        assert_eq!(c.session(id).await.unwrap().queue_length, 1, "the prompt left the queue with its client");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let allow = reqwest::Client::new()
        .post(format!("{url}/api/v1/sessions/{id}/permissions/{request}"))
        .json(&json!({"allow": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(allow.status(), 204);
    let start = Instant::now();
    loop {
        let session = c.session(id).await.unwrap();
        if session.status != SessionStatus::Busy && session.queue_length == 0 {
            assert_eq!(session.status, SessionStatus::Idle);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the prompts did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let messages = c.messages(id).await.unwrap();
    let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant", "user", "assistant"]);
    assert_eq!(messages[4].content, "Me next");
    assert_eq!(messages[5].content, "OK", "the MCP prompt's answer is stored");
    assert_ne!(messages[5].finish_reason.as_deref(), Some("cancelled"));
}

#[test]
fn a_session_prompt_outlives_the_mcp_client_that_sent_it() {
    let srv = scripted_server(&["--tool-permission", "read_file=ask", "--permission-timeout", "120"]);
    let c = client(&srv.url, None);
    let work = notes_dir();
    runtime().block_on(async {
        let (id, request) = blocked_session(&c, work.path()).await;
        let (mcp, _) = connect(&srv.url, None).await;
        let pending = queue_session_prompt(&mcp, &c, &id).await;
        // The client goes away (its MCP session ends) without cancelling the call.
        mcp.cancel().await.expect("close the session");
        drop(pending);
        answered_without_its_client(&srv.url, &c, &id, &request).await;
    });
}

#[test]
fn through_the_stdio_bridge_cancelling_a_session_prompt_cancels_it_and_going_away_does_not() {
    let srv = scripted_server(&["--tool-permission", "read_file=ask", "--permission-timeout", "120"]);
    let c = client(&srv.url, None);
    let work = notes_dir();
    runtime().block_on(async {
        let (id, request) = blocked_session(&c, work.path()).await;
        // `chorus mcp`'s bridge on an in-memory pipe, an MCP client on its other end.
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let bridge = tokio::spawn({
            let url = srv.url.clone();
            async move { chorus_client::mcp::serve(&url, None, tokio::io::split(theirs)).await }
        });
        let (tx, _progress) = mpsc::unbounded_channel();
        let mcp: Mcp = Watcher { progress: tx }.serve(tokio::io::split(ours)).await.expect("initialize");
        let info = mcp.peer_info().expect("the bridge's initialize result");
        assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("chorus"));

        // Cancelled by the client: the queued prompt is dropped.
        let handle = queue_session_prompt(&mcp, &c, &id).await;
        handle.cancel(None).await.expect("notifications/cancelled");
        let start = Instant::now();
        while c.session(&id).await.unwrap().queue_length != 0 {
            assert!(start.elapsed() < Duration::from_secs(60), "the cancelled MCP prompt is still queued");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The client goes away (end of its stdin) without cancelling: the prompt runs on.
        let pending = queue_session_prompt(&mcp, &c, &id).await;
        mcp.cancel().await.expect("close the connection");
        drop(pending);
        answered_without_its_client(&srv.url, &c, &id, &request).await;
        let ended =
            tokio::time::timeout(Duration::from_secs(30), bridge).await.expect("the bridge ends with its client");
        ended.expect("the bridge's task").expect("the bridge");
    });
}
