//! The embedding thread: it owns the BERT weights and the tokenizers, and answers
//! [`Job`]s one at a time: tokenize (or check the given token ids), truncate or refuse what is
//! over the limit, run the encoder in padded batches of up to [`BATCH`] sequences of similar
//! length, pool, normalise, and reply in input order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use candle_core::{Device, Tensor};
use candle_transformers::models::bert::BertModel;
use chorus_engine::embed::normalize;
use chorus_engine::{BackendError, EmbedRequest, EmbeddingInput, Embeddings};
use tokenizers::Tokenizer;

use crate::pooling::Pooling;

/// The most sequences one encoder pass takes (text-embeddings-inference's default
/// `--max-client-batch-size` is 32 too).
pub(crate) const BATCH: usize = 32;

/// One request and where its answer goes.
pub(crate) struct Job {
    /// What to embed.
    pub(crate) request: EmbedRequest,
    /// The caller's end; gone when the caller stopped waiting.
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Embeddings, BackendError>>,
}

/// Everything the thread owns.
pub(crate) struct Model {
    /// The encoder, on the CPU, in f32.
    pub(crate) bert: BertModel,
    /// How token states become one vector.
    pub(crate) pooling: Pooling,
    /// The tokenizer with its own truncation and padding turned off: it gives every token.
    pub(crate) tokenizer: Tokenizer,
    /// The same tokenizer truncating at `limit`, special tokens included (the final `[SEP]`
    /// stays, as in sentence-transformers); used only for inputs over the limit.
    pub(crate) truncating: Tokenizer,
    /// The most tokens one input may have.
    pub(crate) limit: usize,
    /// Token ids must be below this (`vocab_size`).
    pub(crate) n_vocab: usize,
    /// Lower-case text before tokenizing (sentence_bert_config.json's `do_lower_case`).
    pub(crate) lower_case: bool,
    /// The id padding positions hold (masked out, so any id in the vocabulary would do).
    pub(crate) pad_id: u32,
    /// Set when the embedder is dropped: the thread ends after the batch it is running.
    pub(crate) stop: Arc<AtomicBool>,
}

/// The thread's loop: one job at a time until the channel closes or `stop` is set.
pub(crate) fn run(model: Model, jobs: mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        if model.stop.load(Ordering::Relaxed) {
            break;
        }
        if job.reply.is_closed() {
            continue;
        }
        let result = model.embed(&job.request);
        if let Err(e) = &result
            && !e.is_client_error()
        {
            tracing::error!(error = %e, "embedding failed");
        }
        let _ = job.reply.send(result);
    }
}

impl Model {
    /// Embed every input of `request`: one unit vector each, in input order.
    fn embed(&self, request: &EmbedRequest) -> Result<Embeddings, BackendError> {
        let seqs = request
            .inputs
            .iter()
            .enumerate()
            .map(|(index, input)| self.tokens(index, input, request.truncate))
            .collect::<Result<Vec<_>, _>>()?;
        let prompt_tokens = u32::try_from(seqs.iter().map(Vec::len).sum::<usize>()).unwrap_or(u32::MAX);

        // Batches of similar lengths pad little; the answer goes back in input order.
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let mut vectors = vec![Vec::new(); seqs.len()];
        for chunk in order.chunks(BATCH) {
            if self.stop.load(Ordering::Relaxed) {
                return Err(BackendError::Unavailable);
            }
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| seqs[i].as_slice()).collect();
            let pooled = self.forward(&batch).map_err(|e| BackendError::Decode(format!("bert encoder: {e}")))?;
            for (&i, mut vector) in chunk.iter().zip(pooled) {
                normalize(&mut vector);
                vectors[i] = vector;
            }
        }
        Ok(Embeddings { vectors, prompt_tokens })
    }

    /// The token ids of input `index`, within the limit.
    fn tokens(&self, index: usize, input: &EmbeddingInput, truncate: bool) -> Result<Vec<u32>, BackendError> {
        let too_long = |n_tokens| BackendError::InputTooLong { index, n_tokens, limit: self.limit };
        match input {
            EmbeddingInput::Tokens(ids) => {
                if ids.is_empty() {
                    return Err(BackendError::InvalidPrompt(format!("input {index} holds no tokens")));
                }
                if let Some((at, id)) = ids.iter().enumerate().find(|(_, id)| **id as usize >= self.n_vocab) {
                    return Err(BackendError::InvalidPrompt(format!(
                        "input {index} holds token id {id} at position {at}, outside the vocabulary (ids 0 to {})",
                        self.n_vocab - 1
                    )));
                }
                match ids.len() {
                    n if n <= self.limit => Ok(ids.clone()),
                    _ if truncate => Ok(ids[..self.limit].to_vec()),
                    n => Err(too_long(n)),
                }
            }
            EmbeddingInput::Text(text) => {
                let lowered;
                let text = if self.lower_case {
                    lowered = text.to_lowercase();
                    lowered.as_str()
                } else {
                    text.as_str()
                };
                let encode = |tokenizer: &Tokenizer| {
                    tokenizer
                        .encode_fast(text, true)
                        .map(|e| e.get_ids().to_vec())
                        .map_err(|e| BackendError::InvalidPrompt(format!("input {index} cannot be tokenized: {e}")))
                };
                match encode(&self.tokenizer)? {
                    ids if ids.len() <= self.limit => Ok(ids),
                    _ if truncate => encode(&self.truncating),
                    ids => Err(too_long(ids.len())),
                }
            }
        }
    }

    /// Run the encoder on `batch` (each within the limit, none empty), padded to the longest,
    /// and pool: one vector of `hidden_size` floats per sequence, not yet normalised.
    fn forward(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let len = batch.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * len);
        let mut mask = Vec::with_capacity(batch.len() * len);
        for seq in batch {
            let pad = len - seq.len();
            ids.extend_from_slice(seq);
            ids.extend(std::iter::repeat_n(self.pad_id, pad));
            mask.extend(std::iter::repeat_n(1f32, seq.len()));
            mask.extend(std::iter::repeat_n(0f32, pad));
        }
        let ids = Tensor::from_vec(ids, (batch.len(), len), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (batch.len(), len), &Device::Cpu)?;
        // One segment: every token type is 0, as the tokenizer gives for a single text.
        let types = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &types, Some(&mask))?;
        self.pooling.pool(&hidden, &mask)?.to_vec2()
    }
}
