//! Wire types of the OpenAI-compatible API, following OpenAI's API reference
//! (`shared/specs/openai-openapi.yaml`, the schemas named on each type).
//!
//! Requests are deserialized leniently where OpenAI's clients send optional
//! fields, and strictly in types: a wrong type is a 400 in the server, never a
//! silently ignored value. Responses are shaped so that the official SDKs
//! validate them with strict response validation on.

mod chat;
mod common;
mod completions;
mod embeddings;
mod error;
mod models;

pub use chat::*;
pub use common::*;
pub use completions::*;
pub use embeddings::*;
pub use error::*;
pub use models::*;
