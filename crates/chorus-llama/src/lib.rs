//! The llama.cpp backend of chorus (through `llama-cpp-2`): it loads a GGUF
//! model, owns one llama.cpp context on one OS thread per model, and runs
//! continuous batching over that context ([`LlamaBackend`]), or for an
//! embedding model computes pooled embeddings on it. It also renders the
//! model's Jinja chat template ([`template`]).
//!
//! This is the only crate that calls llama.cpp. Unsafe code stays inside
//! `llama-cpp-2`, but for one pair of calls in `state` (a sequence's state as
//! bytes, for the prompt cache).

mod backend;
mod cache;
mod config;
mod embed;
mod fit;
mod grammar;
mod prompt;
mod sampler;
mod snapshot;
mod state;
pub mod template;
mod worker;

pub use backend::{Estimate, LlamaBackend, LlamaError, estimate, gpu_memory};
pub use config::{LlamaConfig, Pooling};
