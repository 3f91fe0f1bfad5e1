//! Wire types of every protocol chorus speaks: the OpenAI-compatible API
//! ([`openai`]), chorus's own endpoints ([`chorus`]) and its native session
//! API under `/api/v1` ([`native`]) with its WebSocket protocol ([`ws`]).
//!
//! This crate owns serialization and nothing else: no I/O, no async runtime,
//! no knowledge of llama.cpp. The server converts between these types and the
//! engine's plain Rust types explicitly, so a wire change never leaks into the
//! domain by accident.

pub mod chorus;
pub mod native;
pub mod openai;
pub mod ws;
