//! The llama.cpp backend of chorus (through `llama-cpp-2`): it loads a GGUF
//! model, owns one llama.cpp context on one OS thread per model, and runs
//! continuous batching over that context ([`LlamaBackend`]). It also renders
//! the model's Jinja chat template ([`template`]).
//!
//! This is the only crate that calls llama.cpp; unsafe code stays inside
//! `llama-cpp-2`.

mod backend;
mod config;
mod fit;
mod grammar;
mod prompt;
mod sampler;
pub mod template;
mod worker;

pub use backend::{LlamaBackend, LlamaError};
pub use config::LlamaConfig;
