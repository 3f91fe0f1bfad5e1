//! A sequence's KV cache state as bytes: the two calls of llama.cpp's
//! `llama_state_seq_get_data_ext` / `llama_state_seq_set_data_ext` (llama.h,
//! "State / sessions") that `llama-cpp-2` only exposes as `unsafe`. The bytes are
//! what the prompt cache keeps in RAM and writes to disk; this is the only
//! module of chorus with `unsafe` code.
#![allow(unsafe_code)]

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::session::LlamaStateSeqFlags;

/// The whole state of sequence `seq` (its KV cells, with their positions), or `None`
/// when it holds nothing.
pub(crate) fn get(ctx: &LlamaContext<'_>, seq: i32) -> Option<Vec<u8>> {
    let flags = LlamaStateSeqFlags::empty();
    let size = ctx.state_seq_get_size_ext(seq, flags);
    if size == 0 {
        return None;
    }
    let mut bytes = vec![0u8; size];
    // SAFETY: `bytes` holds the `size` bytes llama.cpp just computed for this sequence, and
    // nothing can change the context between the two calls (the model thread owns it);
    // llama.cpp writes exactly that many.
    let written = unsafe { ctx.state_seq_get_data_ext(bytes.as_mut_ptr(), seq, flags) };
    (written == size).then_some(bytes)
}

/// Put a state from [`get`] into sequence `seq`, which must be empty. False when llama.cpp
/// refuses it (no room in the KV cache, or a shape that does not match this context).
pub(crate) fn set(ctx: &mut LlamaContext<'_>, seq: i32, bytes: &[u8]) -> bool {
    // SAFETY: llama.cpp reads at most `bytes.len()` bytes and checks every size and shape it
    // reads (layer and cell counts, types) against the context before using it. The bytes
    // only ever come from `get` on a context of the same model file (sha256), KV type and
    // `n_ctx_slot`: in RAM directly, from disk only after their checksum matched.
    unsafe { ctx.state_seq_set_data_ext(bytes, seq, LlamaStateSeqFlags::empty()) }
}
