//! Wire types of every protocol chorus speaks: the OpenAI-compatible API
//! ([`openai`]), chorus's own endpoints ([`chorus`]), its native session
//! API under `/api/v1` ([`native`]) with its WebSocket protocol ([`ws`]), and
//! the control socket `chorus ctl` talks to ([`control`]).
//!
//! This crate owns serialization and nothing else: no I/O, no async runtime,
//! no knowledge of llama.cpp. The types of the HTTP API also derive
//! `utoipa::ToSchema`: their doc comments become the schemas of the server's
//! OpenAPI document. The server converts between these types and the
//! engine's plain Rust types explicitly, so a wire change never leaks into the
//! domain by accident.

pub mod chorus;
pub mod control;
pub mod native;
pub mod openai;
pub mod ws;
