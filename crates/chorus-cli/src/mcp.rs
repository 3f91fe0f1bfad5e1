//! `chorus mcp`: chorus as an MCP server over stdio (a bridge to a server's `/mcp`, or to an
//! embedded one), and `chorus mcp list`, the MCP servers whose tools the agents use.

use anyhow::Result;
use chorus_proto::native::McpServerStatus;

use crate::args::{McpArgs, McpCommand};

pub(crate) async fn run(args: McpArgs) -> Result<()> {
    match args.command {
        Some(McpCommand::List { json, target }) => list(json, target).await,
        None => stdio(args).await,
    }
}

/// `chorus mcp list`: the server's MCP servers (which it starts if they are not running yet),
/// as a table (`SERVER STATUS RESTARTS TOOLS`, a failure's error on the next line) or, with
/// `--json`, the raw `GET /api/v1/mcp/servers` answer.
async fn list(json: bool, target: crate::args::TargetArgs) -> Result<()> {
    let target = crate::target::connect(&target.connect, &target.model).await?;
    let result = target.client.mcp_servers().await;
    target.close().await;
    let list = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.data.is_empty() {
        println!("no MCP servers are configured; add [[mcp.servers]] to the server's chorus.toml");
        return Ok(());
    }
    println!("{:<20}  {:<6}  {:<10}  {:>8}  TOOLS", "SERVER", "TYPE", "STATUS", "RESTARTS");
    for server in list.data {
        let status = match server.status {
            McpServerStatus::Idle => "idle",
            McpServerStatus::Starting => "starting",
            McpServerStatus::Running => "running",
            McpServerStatus::Restarting => "restarting",
            McpServerStatus::Failed => "failed",
        };
        let tools = if server.tools.is_empty() { "-".to_owned() } else { server.tools.join(", ") };
        println!("{:<20}  {:<6}  {:<10}  {:>8}  {tools}", server.name, server.transport, status, server.restarts);
        if let Some(error) = server.error {
            println!("{:<20}  error: {error}", "");
        }
    }
    Ok(())
}

/// `chorus mcp`: MCP over stdin/stdout, bridged to the `/mcp` of the server the flags name, or of
/// an embedded one when none answers. Stdout carries only MCP messages; everything else goes to
/// stderr (MCP clients such as Claude Desktop show it in their server log).
async fn stdio(args: McpArgs) -> Result<()> {
    let target = crate::target::connect(&args.connect, &args.model).await?;
    let client = &target.client;
    let result = chorus_client::mcp::serve_stdio(client.url(), client.api_key()).await;
    target.close().await;
    Ok(result?)
}
