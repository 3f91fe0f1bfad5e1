//! Shared helpers: one llama.cpp backend per test process, model loading and a small
//! decode loop.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

/// llama.cpp may be initialized once per process; every test shares this backend.
pub(crate) fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let mut backend = LlamaBackend::init().expect("llama.cpp backend initializes");
        backend.void_logs();
        backend
    })
}

pub(crate) fn load(path: &Path) -> LlamaModel {
    LlamaModel::load_from_file(backend(), path, &LlamaModelParams::default())
        .unwrap_or_else(|e| panic!("llama.cpp loads {}: {e}", path.display()))
}

/// Decodes `prompt`, then samples `n` tokens one at a time with `sampler` (no stop on EOG).
pub(crate) fn generate(
    model: &LlamaModel,
    prompt: &[LlamaToken],
    mut sampler: LlamaSampler,
    n: usize,
) -> Vec<LlamaToken> {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(512))
        .with_n_batch(512)
        .with_n_threads(2)
        .with_n_threads_batch(2);
    let mut ctx = model.new_context(backend(), params).expect("context");
    let mut batch = LlamaBatch::new(512, 1);
    let last = prompt.len() - 1;
    for (pos, &token) in prompt.iter().enumerate() {
        batch.add(token, i32::try_from(pos).expect("pos"), &[0], pos == last).expect("batch add");
    }
    ctx.decode(&mut batch).expect("prompt decodes");
    let start = i32::try_from(prompt.len()).expect("pos");
    let end = start + i32::try_from(n).expect("n");
    let mut out = Vec::with_capacity(n);
    for pos in start..end {
        let token = sampler.sample(&ctx, batch.n_tokens() - 1);
        out.push(token);
        batch.clear();
        batch.add(token, pos, &[0], true).expect("batch add");
        ctx.decode(&mut batch).expect("token decodes");
    }
    out
}

/// `model`'s tokens for `text` (no BOS, special tokens parsed).
pub(crate) fn tokenize(model: &LlamaModel, text: &str) -> Vec<LlamaToken> {
    model.vocab().tokenize(text.as_bytes(), false, true)
}
