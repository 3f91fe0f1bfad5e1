//! Embeddings from a GGUF embedding model (a BERT-family encoder, a decoder embedder such as
//! Qwen3-Embedding, or any model loaded with `--embeddings`). The inputs are tokenized and
//! checked on the caller's thread ([`prepare`]); the model thread of an embedding model runs
//! [`run`] instead of the generation worker, as llama.cpp's `embedding` example and
//! llama-server's `--embeddings` do: up to `n_seq` inputs (one sequence id each) and
//! `n_ubatch` tokens go into one decode with every token an output, and each sequence's
//! pooled vector (`llama_get_embeddings_seq`) comes back L2-normalised. The memory is emptied
//! before every decode: nothing is cached between inputs.
//!
//! A decode always fits one micro-batch (an embedding model's context has `n_ubatch` =
//! `n_batch`, and a unified cache, so llama.cpp does not split the batch into equal shares of
//! each sequence): a non-causal encoder must see a whole sequence at once, and llama.cpp pools
//! a sequence within one micro-batch, so no input may span two. An input's limit is therefore
//! the micro-batch, and no more than a sequence's cells (`n_ctx_slot`) or the training context.

use std::sync::{Mutex, mpsc};

use chorus_engine::embed::{EmbedRequest, EmbeddingInput, Embeddings, normalize};
use chorus_engine::{BackendError, Metrics};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::worker::SharedStats;

/// Tokenized inputs on their way to the model thread.
pub(crate) struct EmbedJob {
    /// Each input's tokens, within the limit.
    pub(crate) inputs: Vec<Vec<LlamaToken>>,
    /// Where the vectors go; closed when the caller left.
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Embeddings, BackendError>>,
}

/// The request's inputs as tokens, each within `limit`: text through the model's tokenizer
/// with its special tokens (BOS or `[CLS]`, and the EOS or `[SEP]` the model adds), token ids
/// checked against the vocabulary. An input over the limit is refused, or with `truncate` cut
/// to it, keeping the end token the tokenizer appended.
///
/// # Errors
/// [`BackendError::InputTooLong`] without `truncate`; [`BackendError::InvalidPrompt`] for a
/// token id outside the vocabulary or text with no tokens.
pub(crate) fn prepare(
    model: &LlamaModel,
    request: &EmbedRequest,
    limit: usize,
) -> Result<Vec<Vec<LlamaToken>>, BackendError> {
    let vocab = model.vocab();
    let n_vocab = model.n_vocab().max(0) as u32;
    let limit = limit.max(1);
    request
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let too_long = |n_tokens| BackendError::InputTooLong { index, n_tokens, limit };
            match input {
                EmbeddingInput::Tokens(ids) => {
                    if let Some((at, id)) = ids.iter().enumerate().find(|(_, id)| **id >= n_vocab) {
                        return Err(BackendError::InvalidPrompt(format!(
                            "input {index} holds token id {id} at position {at}, outside the vocabulary (ids 0 to {})",
                            n_vocab.saturating_sub(1)
                        )));
                    }
                    if ids.is_empty() {
                        return Err(BackendError::InvalidPrompt(format!("input {index} holds no tokens")));
                    }
                    if ids.len() > limit && !request.truncate {
                        return Err(too_long(ids.len()));
                    }
                    Ok(ids.iter().take(limit).map(|id| LlamaToken(*id as i32)).collect())
                }
                EmbeddingInput::Text(text) => {
                    let mut tokens = vocab.tokenize(text.as_bytes(), true, true);
                    if tokens.is_empty() {
                        return Err(BackendError::InvalidPrompt(format!("input {index} has no tokens")));
                    }
                    if tokens.len() > limit {
                        if !request.truncate {
                            return Err(too_long(tokens.len()));
                        }
                        // The last token is one the tokenizer appended (EOS, `[SEP]`) when the
                        // text alone does not end with it.
                        let plain = vocab.tokenize(text.as_bytes(), false, true);
                        let appended = tokens.len() > plain.len() && tokens.last() != plain.last();
                        cut(&mut tokens, limit, appended);
                    }
                    Ok(tokens)
                }
            }
        })
        .collect()
}

/// Cut `tokens` to `limit` (at least 1), keeping the last token when `keep_last`.
fn cut(tokens: &mut Vec<LlamaToken>, limit: usize, keep_last: bool) {
    if tokens.len() <= limit {
        return;
    }
    match tokens.last().copied() {
        Some(last) if keep_last => {
            tokens.truncate(limit.saturating_sub(1));
            tokens.push(last);
        }
        _ => tokens.truncate(limit),
    }
}

/// Run the model thread of an embedding model until the backend drops its sender.
///
/// Each round takes every job waiting, drops those whose caller left, and embeds their inputs
/// in order, packed into decodes of at most `n_seq` sequences and the context's `n_ubatch`
/// tokens (no input is longer: [`prepare`] saw to it).
pub(crate) fn run(
    mut ctx: LlamaContext<'_>,
    n_seq: usize,
    jobs: mpsc::Receiver<Box<EmbedJob>>,
    stats: &Mutex<SharedStats>,
    metrics: &Metrics,
) {
    let n_tokens = ctx.n_ubatch() as usize;
    let n_seq = n_seq.max(1);
    let mut batch = LlamaBatch::new(n_tokens, 1);
    while let Ok(first) = jobs.recv() {
        let mut pending: Vec<Box<EmbedJob>> = std::iter::once(first).chain(jobs.try_iter()).collect();
        pending.retain(|job| !job.reply.is_closed());
        // Every input of every job, in order: (job, input).
        let items: Vec<(usize, usize)> =
            pending.iter().enumerate().flat_map(|(j, job)| (0..job.inputs.len()).map(move |i| (j, i))).collect();
        let mut vectors: Vec<Vec<Vec<f32>>> = pending.iter().map(|job| Vec::with_capacity(job.inputs.len())).collect();
        let mut failed: Vec<Option<BackendError>> = vec![None; pending.len()];
        let mut start = 0;
        while start < items.len() {
            let (mut end, mut used) = (start, 0);
            while end < items.len() && end - start < n_seq {
                let (j, i) = items[end];
                let len = pending[j].inputs[i].len();
                if end > start && used + len > n_tokens {
                    break;
                }
                used += len;
                end += 1;
            }
            let chunk = &items[start..end];
            start = end;
            // A job that failed already needs no more of its inputs.
            if chunk.iter().all(|(j, _)| failed[*j].is_some()) {
                continue;
            }
            let seqs: Vec<&[LlamaToken]> = chunk.iter().map(|(j, i)| pending[*j].inputs[*i].as_slice()).collect();
            let decoded = decode(&mut ctx, &mut batch, &seqs);
            metrics.decode_step_sequences.observe(seqs.len() as f64);
            metrics.prompt_tokens.inc_by(used as u64);
            if let Ok(mut stats) = stats.lock() {
                stats.record_step(seqs.len() as u32, (items.len() - start) as u32);
            }
            match decoded {
                Ok(out) => {
                    for ((j, _), vector) in chunk.iter().zip(out) {
                        vectors[*j].push(vector);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, sequences = seqs.len(), tokens = used, "embedding decode failed");
                    for (j, _) in chunk {
                        failed[*j].get_or_insert_with(|| e.clone());
                    }
                }
            }
        }
        for ((job, vectors), failed) in pending.into_iter().zip(vectors).zip(failed) {
            let answer = match failed {
                Some(e) => Err(e),
                None => {
                    let prompt_tokens = job.inputs.iter().map(Vec::len).sum::<usize>() as u32;
                    Ok(Embeddings { vectors, prompt_tokens })
                }
            };
            let _ = job.reply.send(answer);
        }
    }
}

/// One decode of `seqs` (sequence ids 0, 1, …), every token an output: each sequence's pooled
/// vector, normalised.
fn decode(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    seqs: &[&[LlamaToken]],
) -> Result<Vec<Vec<f32>>, BackendError> {
    batch.clear();
    for (seq, tokens) in seqs.iter().enumerate() {
        batch.add_sequence(tokens, seq as i32, true).map_err(|e| BackendError::Decode(e.to_string()))?;
    }
    // Nothing of an earlier batch may be attended to (a causal model keeps its cells).
    let _ = ctx.clear_kv_cache_seq(None, None, None);
    ctx.decode(batch).map_err(|e| BackendError::Decode(e.to_string()))?;
    (0..seqs.len())
        .map(|seq| {
            let mut vector = ctx
                .embeddings_seq_ith(seq as i32)
                .map_err(|e| BackendError::Decode(format!("no pooled embedding for sequence {seq}: {e}")))?
                .to_vec();
            normalize(&mut vector);
            Ok(vector)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|id| LlamaToken(*id)).collect()
    }

    #[test]
    fn cutting_keeps_the_appended_end_token() {
        let mut t = tokens(&[101, 1, 2, 3, 4, 102]);
        cut(&mut t, 4, true);
        assert_eq!(t, tokens(&[101, 1, 2, 102]));

        let mut t = tokens(&[1, 2, 3, 4, 5]);
        cut(&mut t, 3, false);
        assert_eq!(t, tokens(&[1, 2, 3]));

        let mut t = tokens(&[1, 2]);
        cut(&mut t, 3, true);
        assert_eq!(t, tokens(&[1, 2]));
    }
}
