//! The MCP client against real servers: an in-process streamable HTTP server (`rmcp`'s, in
//! axum, behind a header check), and stdio commands that cannot start. The restart of a
//! crashing stdio server is tested end to end in `chorus-cli`'s tests, with the testkit's
//! server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use chorus_engine::tools::{Permission, ProviderState, ToolContext, ToolError, ToolProvider, ToolRegistry};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_router};
use tokio_util::sync::CancellationToken;

use super::*;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[derive(Debug, Clone, Copy)]
struct Echo;

#[tool_router(server_handler)]
impl Echo {
    #[tool(description = "Say the text back", annotations(read_only_hint = true))]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        format!("echo: {text}")
    }

    #[tool(description = "Always fails")]
    fn broken(&self) -> Result<CallToolResult, rmcp::ErrorData> {
        Ok(CallToolResult::error(vec![ContentBlock::text("it broke")]))
    }
}

/// An MCP server at `http://127.0.0.1:PORT/mcp` that answers 401 without `x-token: secret`.
async fn http_server() -> (String, CancellationToken) {
    let stop = CancellationToken::new();
    let config = StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
    let service = StreamableHttpService::new(|| Ok(Echo), Arc::new(LocalSessionManager::default()), config);
    let router = axum::Router::new().nest_service("/mcp", service).layer(axum::middleware::from_fn(
        |request: Request, next: Next| async move {
            if request.headers().get("x-token").is_some_and(|v| v == "secret") {
                next.run(request).await
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let shutdown = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    });
    (url, stop)
}

fn http(url: &str, token: &str) -> McpServer {
    let headers = BTreeMap::from([("x-token".to_owned(), token.to_owned())]);
    let mut config = McpServerConfig::new("web", McpTransport::Http { url: url.to_owned(), headers });
    config.start_timeout = Duration::from_secs(10);
    McpServer::new(config).unwrap()
}

fn stdio(name: &str, command: &str, args: &[&str]) -> McpServer {
    let transport = McpTransport::Stdio {
        command: command.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: BTreeMap::new(),
        cwd: None,
    };
    let mut config = McpServerConfig::new(name, transport);
    config.start_timeout = Duration::from_secs(10);
    McpServer::new(config).unwrap()
}

/// The error of a provider's `tools()`.
async fn tools_error(server: &McpServer) -> ToolError {
    match server.tools().await {
        Ok(tools) => panic!("{} tools, no error", tools.len()),
        Err(e) => e,
    }
}

fn context() -> ToolContext {
    ToolContext { work_dir: ".".into() }
}

#[tokio::test]
async fn an_http_server_starts_on_first_need_and_its_tools_run() {
    let (url, stop) = http_server().await;
    let server = Arc::new(http(&url, "secret"));
    assert_eq!(server.status().state, ProviderState::Idle, "nothing starts before it is needed");
    let registry = ToolRegistry::new(Vec::new()).with_provider(server.clone());
    let set = registry.tool_set(None).await;
    let status = server.status();
    assert_eq!((status.state, status.transport.as_str()), (ProviderState::Running, "http"), "{status:?}");
    assert_eq!(status.tools, ["web.broken", "web.echo"], "in the server's order");
    assert_eq!(set.permission("web.echo"), Permission::Allow, "read-only: allowed by default");
    assert_eq!(set.permission("web.broken"), Permission::Ask);
    let echo = set.get("web.echo").unwrap().definition();
    assert_eq!(echo.description.as_deref(), Some("Say the text back"));
    assert_eq!(echo.parameters["properties"]["text"]["type"], "string");

    assert_eq!(set.call(&context(), "web.echo", r#"{"text": "hi"}"#).await.unwrap(), "echo: hi");
    assert_eq!(set.call(&context(), "web.broken", "{}").await.unwrap_err(), ToolError::Failed("it broke".into()));
    // The server's own complaint reaches the model.
    let e = set.call(&context(), "web.echo", "{}").await.unwrap_err();
    assert!(e.to_string().contains("missing field `text`"), "{e}");
    stop.cancel();
}

#[tokio::test]
async fn headers_reach_an_http_server_and_a_refusal_is_a_failed_start() {
    let (url, stop) = http_server().await;
    let server = http(&url, "wrong");
    let error = tools_error(&server).await;
    assert_eq!(error.code(), "unavailable", "{error}");
    let status = server.status();
    assert_eq!(status.state, ProviderState::Failed);
    assert!(status.error.is_some());
    stop.cancel();
}

#[tokio::test]
async fn a_command_that_does_not_exist_fails_and_waits_before_trying_again() {
    let server = stdio("nope", "/nonexistent/chorus-mcp-server", &[]);
    let error = tools_error(&server).await.to_string();
    assert!(
        error.contains("the MCP server `nope` could not start: cannot run `/nonexistent/chorus-mcp-server`"),
        "{error}"
    );
    let status = server.status();
    assert_eq!((status.state, status.restarts), (ProviderState::Failed, 0));
    assert!(status.error.unwrap().contains("No such file"));
    // Within the backoff delay a need answers at once, without a new attempt.
    let again = tools_error(&server).await.to_string();
    assert_eq!(again, error);
    // After it, the next need tries again (and fails again).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(server.tools().await.is_err());
    assert_eq!(server.status().state, ProviderState::Failed);
}

#[tokio::test]
async fn a_command_that_exits_at_once_is_a_failed_start() {
    let server = stdio("quits", "sh", &["-c", "echo bye >&2; exit 1"]);
    let error = tools_error(&server).await.to_string();
    assert!(error.contains("could not start: the MCP initialization failed"), "{error}");
    let registry = ToolRegistry::default().with_provider(Arc::new(server));
    assert_eq!(registry.tool_set(None).await.tools().len(), 5, "the built-ins stay");
}

#[test]
fn backoff_doubles_up_to_its_maximum_and_resets() {
    let mut backoff = Backoff::default();
    let delays: Vec<f64> = (0..9).map(|_| backoff.next_delay().as_secs_f64()).collect();
    assert_eq!(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
    backoff.reset();
    assert_eq!(backoff.next_delay(), Duration::from_millis(500));
    let mut short = Backoff::new(Duration::from_secs(2), Duration::from_secs(3));
    assert_eq!([short.next_delay(), short.next_delay(), short.next_delay()].map(|d| d.as_secs()), [2, 3, 3]);
}

#[test]
fn configurations_are_checked() {
    let stdio = |command: &str| McpTransport::Stdio {
        command: command.into(),
        args: Vec::new(),
        env: BTreeMap::new(),
        cwd: None,
    };
    let http = |url: &str, header: (&str, &str)| McpTransport::Http {
        url: url.into(),
        headers: BTreeMap::from([(header.0.to_owned(), header.1.to_owned())]),
    };
    let check = |name: &str, transport: McpTransport| McpServerConfig::new(name, transport).validate();
    assert_eq!(check("ok_name-1", stdio("x")), Ok(()));
    assert_eq!(check("ok", http("https://h/mcp", ("Authorization", "Bearer t"))), Ok(()));
    for name in ["", "a.b", "a b", &"x".repeat(33)] {
        assert_eq!(check(name, stdio("x")), Err(McpConfigError::InvalidName(name.to_owned())));
    }
    assert!(matches!(check("a", stdio("")), Err(McpConfigError::EmptyCommand { .. })));
    for url in ["ftp://h", "http://", "h/mcp"] {
        assert!(matches!(check("a", http(url, ("a", "b"))), Err(McpConfigError::InvalidUrl { .. })), "{url}");
    }
    for header in [("bad header", "x"), ("x-ok", "line\nbreak"), ("Mcp-Session-Id", "1"), ("accept", "x")] {
        let error = check("a", http("http://h", header)).unwrap_err();
        assert!(matches!(error, McpConfigError::InvalidHeader { .. }), "{header:?}: {error}");
    }
}

#[test]
fn results_become_text_for_the_model() {
    let result = CallToolResult::success(vec![
        ContentBlock::text("first"),
        ContentBlock::text("second"),
        ContentBlock::image("aGVsbG8=", "image/png"),
        ContentBlock::resource(ResourceContents::text("body", "file:///a.txt")),
    ]);
    assert_eq!(
        tool::result_text(result).unwrap(),
        "first\nsecond\n[image: image/png, 8 bytes of base64]\n[resource file:///a.txt]\nbody"
    );
    let mut structured = CallToolResult::structured(serde_json::json!({"n": 1}));
    structured.content.clear();
    assert_eq!(tool::result_text(structured).unwrap(), r#"{"n":1}"#, "structuredContent when there is no block");
    let failed = CallToolResult::error(vec![ContentBlock::text("no such page")]);
    assert_eq!(tool::result_text(failed), Err(ToolError::Failed("no such page".into())));
    let silent = CallToolResult::error(Vec::new());
    assert_eq!(tool::result_text(silent).unwrap_err().code(), "failed");
}
