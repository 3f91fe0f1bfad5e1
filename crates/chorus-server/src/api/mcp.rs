//! `GET /api/v1/mcp/servers`: the external MCP servers of the configuration (`[[mcp.servers]]`),
//! their state and tools, for `chorus mcp list`. Listing them starts those not started yet
//! (servers start when first needed), so the answer shows their tools.

use axum::Json;
use axum::extract::State;
use chorus_engine::tools::ProviderState;
use chorus_proto::native;

use crate::AppState;

fn status(state: ProviderState) -> native::McpServerStatus {
    match state {
        ProviderState::Idle => native::McpServerStatus::Idle,
        ProviderState::Starting => native::McpServerStatus::Starting,
        ProviderState::Running => native::McpServerStatus::Running,
        ProviderState::Restarting => native::McpServerStatus::Restarting,
        ProviderState::Failed => native::McpServerStatus::Failed,
    }
}

/// List the MCP servers
///
/// The external MCP servers whose tools the agents can call (as `SERVER.TOOL`), in
/// configuration order, with their state. Servers not started yet are started first (a server
/// that cannot start is listed as `failed`, with its error).
#[utoipa::path(
    get,
    path = "/api/v1/mcp/servers",
    operation_id = "listMcpServers",
    tag = "tools",
    responses((status = 200, description = "The MCP servers", body = native::McpServerList))
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<native::McpServerList> {
    let tools = state.engine.tools();
    // Start them (each contributes its tools, or fails and says why in its status).
    tools.tool_set(None).await;
    let data = tools
        .providers()
        .iter()
        .map(|p| {
            let s = p.status();
            native::McpServer {
                name: s.name,
                transport: s.transport,
                status: status(s.state),
                tools: s.tools,
                restarts: s.restarts,
                error: s.error,
            }
        })
        .collect();
    Json(native::McpServerList { object: "list".into(), data })
}
