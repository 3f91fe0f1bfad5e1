//! Wire types of every protocol chorus speaks: the OpenAI-compatible API
//! ([`openai`]), chorus's own endpoints ([`chorus`]), llama-server's that chorus
//! also serves ([`llama`]), Ollama's API ([`ollama`]), its native session
//! API under `/api/v1` ([`native`]) with its WebSocket protocol ([`ws`]), the
//! control socket `chorus ctl` talks to ([`control`]), the mobile API ([`mobile`]), the model pool's `/api/v1/models`
//! ([`models`]), the content router's decisions and dry run ([`route`]), TBot's task endpoints
//! ([`tasks`]), and the arguments and
//! results of the tools chorus serves over MCP ([`mcp`]).
//!
//! This crate owns serialization and nothing else: no I/O, no async runtime,
//! no knowledge of llama.cpp. The types of the HTTP API also derive
//! `utoipa::ToSchema`: their doc comments become the schemas of the server's
//! OpenAPI document; the MCP tool types derive `schemars::JsonSchema` instead, the
//! schema language of MCP tool definitions. The server converts between these types and the
//! engine's plain Rust types explicitly, so a wire change never leaks into the
//! domain by accident.

pub mod character;
pub mod chorus;
pub mod control;
pub mod llama;
pub mod mcp;
pub mod mobile;
pub mod models;
pub mod native;
pub mod ollama;
pub mod openai;
pub mod route;
pub mod tasks;
pub mod ws;
