//! A small MCP server over stdio (`chorus-testkit mcp-server`), the external tool server of
//! chorus's MCP client tests, built with `rmcp`. Its tools:
//!
//! - `lookup {path: string}`, marked read-only: answers [`lookup_text`] for the path;
//! - `crash {reason: string}`: the process exits at once with status 3, without answering, as a
//!   crashing server would.
//!
//! It writes `chorus-testkit mcp-server: ready` to stderr when it starts (tests find it in
//! chorus's log) and exits when its stdin closes.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::{ServiceExt, tool, tool_router};

/// What `lookup` answers for `path`.
pub fn lookup_text(path: &str) -> String {
    format!("lookup found {path}: the answer is 42")
}

/// `lookup`'s arguments.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct LookupArgs {
    /// The path to look up.
    pub path: String,
}

/// `crash`'s arguments.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct CrashArgs {
    /// Why (written to stderr before exiting).
    pub reason: String,
}

/// The server.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestMcpServer;

#[tool_router(server_handler)]
impl TestMcpServer {
    /// Look a path up.
    #[tool(description = "Look a path up and say what is known about it", annotations(read_only_hint = true))]
    fn lookup(&self, Parameters(LookupArgs { path }): Parameters<LookupArgs>) -> String {
        lookup_text(&path)
    }

    /// Exit the process at once (status 3), without answering.
    #[tool(description = "Crash the server (for restart tests)")]
    fn crash(&self, Parameters(CrashArgs { reason }): Parameters<CrashArgs>) -> String {
        eprintln!("chorus-testkit mcp-server: crashing ({reason})");
        std::process::exit(3)
    }
}

/// Serve MCP on stdin/stdout until stdin closes.
///
/// # Errors
/// The runtime cannot start, or the MCP initialization fails (the error's text).
pub fn serve_stdio() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let service = TestMcpServer
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| format!("the MCP initialization failed: {e}"))?;
        eprintln!("chorus-testkit mcp-server: ready");
        service.waiting().await.map_err(|e| format!("the server failed: {e}"))?;
        Ok(())
    })
}
