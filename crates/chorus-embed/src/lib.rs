//! Embeddings from sentence-transformers BERT models, the way text-embeddings-inference serves
//! them: [`BertEmbedder`] loads a model directory (`config.json`, safetensors weights,
//! `tokenizer.json`, `1_Pooling/config.json`, optional `modules.json` and
//! `sentence_bert_config.json`) into candle's BERT on the CPU in f32, and is the engine's
//! [`Backend`] for `/v1/embeddings` only. One thread of its own (`worker`) runs the encoder;
//! `model_dir` reads and checks the directory, `pooling` pools token states into vectors.
//!
//! This crate does not depend on llama.cpp (`chorus-llama`) nor know HTTP.

mod error;
mod model_dir;
mod pooling;
mod worker;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::BertModel;
use chorus_engine::embed::EmbedReply;
use chorus_engine::{
    Backend, BackendError, BackendStats, EmbedRequest, GenerationStream, ModelInfo, Serves, ToolFormat,
    ValidGenerateRequest,
};
use tokenizers::Tokenizer;
use tokenizers::utils::truncation::{TruncationDirection, TruncationParams, TruncationStrategy};

pub use error::EmbedError;
pub use pooling::Pooling;

use model_dir::ModelDir;
use worker::{Job, Model};

/// A loaded BERT embedding model and the thread that runs it.
///
/// Dropping it stops the thread (after the batch it is running; jobs still queued get no
/// answer, so their [`EmbedReply`] resolves to a receive error) and joins it.
pub struct BertEmbedder {
    info: ModelInfo,
    pooling: Pooling,
    /// Bytes of the weights in memory (f32).
    memory: u64,
    /// Jobs for the thread; `None` once dropping.
    jobs: Option<mpsc::Sender<Job>>,
    /// Tells the thread to stop between batches.
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BertEmbedder {
    /// Load the sentence-transformers model directory `dir`, served as `id`. Blocking: it reads
    /// the weights and starts the thread on the caller's thread (use `spawn_blocking` from
    /// async code).
    ///
    /// The input limit is `max_seq_length` of `sentence_bert_config.json` when it is there
    /// (what sentence-transformers truncates at: 256 tokens for all-MiniLM-L6-v2), else
    /// `max_position_embeddings` of `config.json`. `tokenizer.json`'s own truncation and
    /// padding settings are ignored.
    ///
    /// # Errors
    /// [`EmbedError`] naming the file at fault: a missing `config.json`, `tokenizer.json`,
    /// pooling config or weights; a model that is not BERT; a `modules.json` with modules other
    /// than Transformer, Pooling and Normalize (such as Dense); a pooling other than exactly
    /// one of cls, mean and max; weights that do not fit the config.
    pub fn load(dir: &Path, id: String) -> Result<Self, EmbedError> {
        let md = ModelDir::read(dir)?;
        let (tokenizer, truncating) = tokenizers(&md)?;

        let device = Device::Cpu;
        let weights_error =
            |message: String| EmbedError::Weights { file: md.weights.first().cloned().unwrap_or_default(), message };
        let mut tensors = HashMap::new();
        let mut size = 0;
        for file in &md.weights {
            size += std::fs::metadata(file).map_err(|source| EmbedError::Read { file: file.clone(), source })?.len();
            let shard = candle_core::safetensors::load(file, &device)
                .map_err(|e| EmbedError::Weights { file: file.clone(), message: e.to_string() })?;
            tensors.extend(shard);
        }
        // Float tensors are parameters; integer ones are buffers such as `position_ids`.
        let n_params: u64 = tensors.values().filter(|t| t.dtype().is_float()).map(|t| t.elem_count() as u64).sum();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let bert = BertModel::load(vb, &md.bert).map_err(|e| weights_error(e.to_string()))?;

        let limit = u32::try_from(md.limit).unwrap_or(u32::MAX);
        let info = ModelInfo {
            id,
            path: dir.to_owned(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            architecture: "bert".into(),
            n_ctx: limit,
            n_ctx_slot: limit,
            n_ctx_train: u32::try_from(md.bert.max_position_embeddings).unwrap_or(u32::MAX),
            n_vocab: u32::try_from(md.bert.vocab_size).unwrap_or(u32::MAX),
            n_parallel: 1,
            n_params,
            size,
            tool_format: ToolFormat::default(),
            kv_unified: false,
            kv_bytes: 0,
            context_choice: md.context_choice.clone(),
            has_chat_template: false,
            chat_template: None,
            n_embd: u32::try_from(md.bert.hidden_size).unwrap_or(u32::MAX),
            serves: Serves::EMBEDDINGS,
            fim: false,
        };

        let stop = Arc::new(AtomicBool::new(false));
        let model = Model {
            bert,
            pooling: md.pooling,
            tokenizer,
            truncating,
            limit: md.limit,
            n_vocab: md.bert.vocab_size,
            lower_case: md.lower_case,
            pad_id: u32::try_from(md.bert.pad_token_id).unwrap_or(0),
            stop: Arc::clone(&stop),
        };
        let (jobs, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("chorus-embed".into())
            .spawn(move || worker::run(model, rx))
            .map_err(EmbedError::Thread)?;
        tracing::info!(
            model = %info.id,
            path = %dir.display(),
            n_embd = info.n_embd,
            limit = md.limit,
            pooling = ?md.pooling,
            n_params,
            "embedding model loaded"
        );
        Ok(Self { info, pooling: md.pooling, memory: n_params * 4, jobs: Some(jobs), stop, thread: Some(thread) })
    }

    /// How the model pools token states into one vector.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The refusal of a generation request.
    fn unsupported(&self, request: &ValidGenerateRequest) -> BackendError {
        BackendError::generation_unsupported(&self.info.id, &request.get().prompt)
    }
}

/// The tokenizer with its own truncation and padding off, and a copy that truncates at the
/// limit (special tokens included).
fn tokenizers(md: &ModelDir) -> Result<(Tokenizer, Tokenizer), EmbedError> {
    let error = |message: String| EmbedError::Tokenizer { file: md.tokenizer.clone(), message };
    let mut plain =
        Tokenizer::from_file(&md.tokenizer).map_err(|e| error(format!("cannot load the tokenizer: {e}")))?;
    plain.with_padding(None);
    plain.with_truncation(None).map_err(|e| error(e.to_string()))?;
    let vocab = plain.get_vocab_size(true);
    if vocab > md.bert.vocab_size {
        return Err(error(format!(
            "the tokenizer has {vocab} tokens but config.json's vocab_size is {}",
            md.bert.vocab_size
        )));
    }
    let special = plain.get_post_processor().map_or(0, |p| {
        use tokenizers::PostProcessor;
        p.added_tokens(false)
    });
    if md.limit <= special {
        return Err(error(format!(
            "the input limit ({} tokens) leaves no room beside {special} special tokens",
            md.limit
        )));
    }
    let mut truncating = plain.clone();
    truncating
        .with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: md.limit,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| error(format!("cannot truncate at {} tokens: {e}", md.limit)))?;
    Ok((plain, truncating))
}

impl Backend for BertEmbedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Always [`BackendError::Unsupported`]: an embedding model writes no text.
    fn generate(&self, request: ValidGenerateRequest) -> Result<GenerationStream, BackendError> {
        Err(self.unsupported(&request))
    }

    /// Always [`BackendError::Unsupported`], as for `generate`.
    fn prompt_tokens(&self, request: &ValidGenerateRequest) -> Result<u32, BackendError> {
        Err(self.unsupported(request))
    }

    fn stats(&self) -> BackendStats {
        BackendStats { slots_total: 1, ..BackendStats::default() }
    }

    /// Queue the request for the embedding thread; requests are answered one after another,
    /// each in batches of up to 32 inputs of similar length.
    ///
    /// # Errors
    /// Here only [`BackendError::Unavailable`] (the thread is gone). The reply carries
    /// [`BackendError::InputTooLong`] (an input over the limit without `truncate`),
    /// [`BackendError::InvalidPrompt`] (a token id outside the vocabulary, an empty token list,
    /// text the tokenizer refuses) and [`BackendError::Decode`] (the encoder failed).
    fn embed(&self, request: EmbedRequest) -> Result<EmbedReply, BackendError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(BackendError::Unavailable)?;
        jobs.send(Job { request, reply }).map_err(|_| BackendError::Unavailable)?;
        Ok(rx)
    }

    /// The weights in f32: 4 bytes per parameter. Activations come and go per batch.
    fn memory_bytes(&self) -> u64 {
        self.memory
    }
}

impl Drop for BertEmbedder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
