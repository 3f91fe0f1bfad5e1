//! MCP (Model Context Protocol, spec 2025-06-18 and later, via `rmcp`, the official Rust SDK):
//! chorus as an MCP server (`server`: the streamable HTTP endpoint `/mcp`) and as an MCP
//! client of external tool servers (`client`: their tools join the engine's tool registry).
//!
//! The server side: [`ChorusMcp`] (`server`) is the handler, with its `tools` (`chat`,
//! `session_prompt`, `list_sessions`, `list_models`, `route`), `resources` (sessions and their
//! transcripts, models) and `prompts` (the agents' system prompts); `endpoint` mounts it at
//! `/mcp` behind `guard` (Host and Origin against DNS rebinding) and the API key, and
//! `lifecycle` closes its sessions at shutdown once no request of theirs is in flight and tells
//! a client's `notifications/cancelled` from its going away. Its wire types are in
//! `chorus_proto::mcp`.

pub mod client;
mod endpoint;
mod guard;
mod lifecycle;
mod prompts;
mod resources;
mod server;
mod tools;

pub use server::ChorusMcp;

pub(crate) use endpoint::routes;
pub(crate) use lifecycle::McpSessions;
