//! Test support for chorus (a dev-dependency only): deterministic tiny random-weight GGUF
//! models that the real llama.cpp loads and runs, their Q4_0 quantization through llama.cpp's
//! own quantizer, and a per-process cached tiny model for tests.
//!
//! - [`ModelSpec`] and [`write_model`]: the model files (written through candle's GGUF writer);
//! - [`quantize()`]: `llama_model_quantize` from `llama-cpp-sys-2`;
//! - [`tiny_model_path`]: the tiny model, written once per process;
//! - the tokenizer inside every model is a GPT-2-style byte-level BPE with ChatML specials
//!   (`<|endoftext|>` BOS, `<|im_start|>`, `<|im_end|>` EOS);
//! - [`mcp_server`]: a small stdio MCP server (`chorus-testkit mcp-server`) for the tests of
//!   chorus as an MCP client.

pub mod mcp_server;
mod model;
mod quantize;
pub mod server;
mod vocab;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use model::{ModelSpec, Script, WeightType, write_model};
pub use quantize::{QuantType, quantize};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The model spec is inconsistent (a zero size, heads that do not divide the width, ...).
    #[error("invalid model spec: {0}")]
    InvalidSpec(String),
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// candle's GGUF writer or tensor code failed.
    #[error("gguf writer failed: {0}")]
    Gguf(#[from] candle_core::Error),
    /// A path cannot be handed to llama.cpp (not UTF-8, or contains a NUL byte).
    #[error("path {0} cannot be passed to llama.cpp")]
    UnsupportedPath(PathBuf),
    /// `llama_model_quantize` returned a non-zero status; llama.cpp logs the reason.
    #[error("llama.cpp quantization of {input} failed with status {status}")]
    Quantize {
        /// The file being quantized.
        input: PathBuf,
        /// The status llama.cpp returned.
        status: u32,
    },
}

impl TestkitError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

/// The path of [`ModelSpec::tiny`] written as a GGUF file, for tests.
///
/// Written once per process to `std::env::temp_dir()/chorus-testkit-<hash of the spec and of
/// this crate's version>.gguf`. [`write_model`] writes a temporary file and renames it, so test
/// processes running in parallel all see a complete file (the bytes are identical, whoever
/// wins).
///
/// # Panics
/// When the model cannot be written (an unwritable temporary directory): test support only.
pub fn tiny_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| cached_model(&ModelSpec::tiny())).clone()
}

/// The path of [`ModelSpec::scripted`] written as a GGUF file, cached like [`tiny_model_path`].
///
/// # Panics
/// When the model cannot be written: test support only.
pub fn scripted_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| cached_model(&ModelSpec::scripted())).clone()
}

/// Writes `spec` to `temp_dir()/chorus-testkit-<hash>.gguf` and returns the path.
fn cached_model(spec: &ModelSpec) -> PathBuf {
    let key = format!("{}:{spec:?}", env!("CARGO_PKG_VERSION"));
    let path = std::env::temp_dir().join(format!("chorus-testkit-{:016x}.gguf", fnv1a(&key)));
    if let Err(e) = write_model(spec, &path) {
        panic!("chorus-testkit: cannot write the test model to {}: {e}", path.display());
    }
    path
}

/// 64-bit FNV-1a: a hash that is stable across processes and Rust versions (unlike
/// `DefaultHasher`), so every test process picks the same cache file name.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
