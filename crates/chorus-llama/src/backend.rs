//! [`LlamaBackend`]: loads a GGUF model, starts its model thread, and
//! implements the engine's [`Backend`] by tokenizing on the caller's thread
//! and queueing the sequence for the model thread.
//!
//! A model is either generative or an embedding model (see `embedding_model`): the latter's
//! context computes pooled embeddings, its thread runs `embed::run` instead of the generation
//! worker, and it serves [`Backend::embed`] only.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chorus_engine::backend::SlotActionReply;
use chorus_engine::embed::{EmbedReply, EmbedRequest};
use chorus_engine::tools::{self, ToolFormat};
use chorus_engine::{
    Backend, BackendError, BackendStats, CacheStats, GenerateRequest, GenerationStream, Metrics, ModelInfo, Prompt,
    Serves, SlotAction, Token, ValidGenerateRequest,
};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend as LlamaRuntime;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;

use crate::cache::PromptCache;
use crate::embed::EmbedJob;
use crate::snapshot::{DiskCache, DiskConfig};
use crate::template::{ChatTemplate, TemplateError};
use crate::worker::{self, Caches, Job, Msg, SharedStats};
use crate::{LlamaConfig, Pooling};

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    /// The llama.cpp runtime failed to initialise.
    #[error("llama.cpp failed to initialise: {0}")]
    Init(String),
    /// The file is missing or not a GGUF model llama.cpp can load.
    #[error("cannot load the model {path}: {reason}")]
    Load {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The context (KV cache) could not be created, usually for lack of memory.
    #[error("cannot create a context of {n_ctx} tokens: {reason}; try a smaller --ctx-size")]
    Context {
        /// Requested context size.
        n_ctx: u32,
        /// What went wrong.
        reason: String,
    },
    /// The chat template (from the GGUF or `--chat-template`) does not compile.
    #[error("the chat template does not compile: {0}")]
    Template(#[from] TemplateError),
    /// The model thread could not be started.
    #[error("cannot start the model thread: {0}")]
    Thread(String),
    /// An embedding model (or one loaded with `--embeddings`) whose pooling gives no single
    /// vector per input.
    #[error("cannot serve embeddings from {path}: {reason}")]
    Embeddings {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The process-wide llama.cpp runtime, initialised once.
fn runtime() -> Result<&'static LlamaRuntime, LlamaError> {
    static RUNTIME: OnceLock<Result<LlamaRuntime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaRuntime::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlamaError::Init(e.clone()))
}

/// A loaded model served by its own thread.
pub struct LlamaBackend {
    info: ModelInfo,
    model: Arc<LlamaModel>,
    template: ChatTemplate,
    /// The generation worker's channel; `None` for an embedding model.
    jobs: Option<mpsc::Sender<Msg>>,
    /// The embedding loop's channel, for an embedding model; dropping it ends the thread.
    embed_jobs: Option<mpsc::Sender<Box<EmbedJob>>>,
    /// The most tokens one embedding input may have (0 for a generative model).
    embed_limit: usize,
    /// A generative model's embeddings (as Ollama serves them from any model): a second,
    /// small context with last-token pooling and its own thread, made on the first request.
    side_embedder: Option<SideEmbedder>,
    stats: Arc<Mutex<SharedStats>>,
    /// `--cache-ram` and `--cache-disk` as resolved at load, in bytes.
    budgets: (u64, u64),
    slot_actions: bool,
    /// Weights (as llama.cpp counts them), KV cache and compute buffers, in bytes.
    memory_bytes: u64,
    metrics: Arc<Metrics>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LlamaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaBackend").field("info", &self.info).finish_non_exhaustive()
    }
}

impl LlamaBackend {
    /// Load the model (memory-mapped), create its context and start its thread.
    /// Blocking: call it from a blocking thread.
    ///
    /// # Errors
    /// [`LlamaError`]: the file, the context or the chat template.
    pub fn load(config: &LlamaConfig, metrics: Arc<Metrics>) -> Result<Self, LlamaError> {
        let runtime = runtime()?;
        let path = &config.model_path;
        let load_err = |reason: String| LlamaError::Load { path: path.display().to_string(), reason };
        if !path.is_file() {
            return Err(load_err("no such file".into()));
        }
        let params = LlamaModelParams::default().with_n_gpu_layers(config.n_gpu_layers);
        let model = LlamaModel::load_from_file(runtime, path, &params)
            .map_err(|e| load_err(format!("{e} (is it a GGUF file?)")))?;
        let model = Arc::new(model);
        let pooling = if embedding_model(&model, config) {
            let reason = |reason| LlamaError::Embeddings { path: path.display().to_string(), reason };
            Some(embedding_pooling(&model, config).map_err(reason)?)
        } else {
            None
        };
        // An embedding model has no use for a chat template (nor for the warning that it lacks one).
        let (template, has_chat_template) =
            if pooling.is_some() { (ChatTemplate::chatml(), false) } else { load_template(&model, config)? };

        let n_ctx_train = model.n_ctx_train();
        let n_parallel = config.n_parallel.clamp(1, 256);
        let kv_bytes_per_token = kv_bytes_per_token(&model);
        let model_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        let (n_ctx, context_choice) =
            choose_ctx(config, n_ctx_train, kv_bytes_per_token, model_bytes, pooling.is_some());
        let n_ubatch = n_ubatch(config, pooling.is_some());
        // An embedding model's cache is always unified: with one stream per sequence llama.cpp
        // splits a batch into equal shares of every sequence, so a sequence would span
        // micro-batches and be pooled from its last share only.
        let kv_unified = config.kv_unified || pooling.is_some();
        let mut ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(config.n_batch.max(1))
            .with_n_ubatch(n_ubatch)
            .with_n_seq_max(n_parallel)
            .with_kv_unified(kv_unified)
            .with_n_threads(config.n_threads.max(1) as i32)
            .with_n_threads_batch(config.n_threads_batch.max(1) as i32);
        if let Some(pooling) = pooling {
            ctx_params = ctx_params.with_embeddings(true).with_pooling_type(pooling.to_llama());
        }

        let id = config.alias.clone().unwrap_or_else(|| file_stem(path));
        let stats = Arc::new(Mutex::new(SharedStats::new(n_parallel)));
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let (embed_tx, embed_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let model = Arc::clone(&model);
            let stats = Arc::clone(&stats);
            let metrics = Arc::clone(&metrics);
            let disk_jobs = jobs_tx.clone();
            let config = config.clone();
            let id = id.clone();
            std::thread::Builder::new()
                .name("chorus-llama".into())
                .spawn(move || {
                    let ctx = match model.new_context(runtime, ctx_params) {
                        Ok(ctx) => ctx,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let n_ctx = ctx.n_ctx();
                    // llama.cpp rounds the context to whole slots of 256 cells. With a unified
                    // cache one sequence may take all of it, but no more than the model learnt.
                    let n_ctx_slot = if kv_unified { n_ctx.min(n_ctx_train.max(256)) } else { n_ctx / n_parallel };
                    if pooling.is_some() {
                        // One input fills at most one micro-batch (see `embed`).
                        let limit = ctx.n_ubatch().min(n_ctx_slot).min(n_ctx_train.max(1));
                        let _ = ready_tx.send(Ok((n_ctx, n_ctx_slot, (0, 0), limit as usize)));
                        crate::embed::run(ctx, n_parallel as usize, embed_rx, &stats, &metrics);
                        return;
                    }
                    let caches = caches(&config, &id, n_ctx_slot, disk_jobs, &metrics);
                    let budgets = (caches.ram.budget(), caches.disk.as_ref().map_or(0, |d| d.budget));
                    let _ = ready_tx.send(Ok((n_ctx, n_ctx_slot, budgets, 0)));
                    worker::run(&model, ctx, n_parallel, n_ctx_slot, jobs_rx, &stats, &metrics, caches);
                })
                .map_err(|e| LlamaError::Thread(e.to_string()))?
        };
        let (n_ctx, n_ctx_slot, budgets, embed_limit) = match ready_rx.recv() {
            Ok(Ok(n)) => n,
            Ok(Err(reason)) => return Err(LlamaError::Context { n_ctx, reason }),
            Err(_) => return Err(LlamaError::Thread("the model thread ended while starting".into())),
        };

        let memory_bytes = model.size()
            + u64::from(n_ctx) * kv_bytes_per_token
            + compute_bytes(config, n_ubatch, model.n_vocab().max(0) as u64, model.n_embd().max(0) as u64);
        // What `llama_get_embeddings_seq` gives: `n_embd_out` (the width after any output
        // projection) for every pooling but rank, which is refused.
        let n_embd = if pooling.is_some() { model.n_embd_out() } else { model.n_embd() };
        let info = ModelInfo {
            id,
            path: path.clone(),
            created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            architecture: model.meta_val_str("general.architecture").unwrap_or_default(),
            n_ctx,
            n_ctx_slot,
            n_ctx_train,
            n_vocab: model.n_vocab().max(0) as u32,
            n_parallel,
            n_params: model.n_params(),
            size: model_bytes,
            tool_format: ToolFormat::detect(template.source()),
            kv_unified,
            kv_bytes: u64::from(n_ctx) * kv_bytes_per_token,
            context_choice,
            has_chat_template,
            chat_template: has_chat_template.then(|| template.source().to_owned()),
            n_embd: n_embd.max(0) as u32,
            // A generative model embeds too, through its side context (`SideEmbedder`).
            serves: if pooling.is_some() { Serves::EMBEDDINGS } else { Serves { generation: true, embeddings: true } },
            fim: crate::prompt::has_fim(&model),
        };
        match pooling {
            Some(pooling) => tracing::info!(
                model = %info.id, n_ctx, n_ctx_slot, n_parallel, n_ctx_train, n_embd = info.n_embd,
                %pooling, input_limit = embed_limit, params = info.n_params,
                "embedding model loaded; context: {}", info.context_choice
            ),
            None => tracing::info!(
                model = %info.id, n_ctx, n_ctx_slot, n_parallel, kv_unified, n_ctx_train,
                kv_mib = info.kv_bytes >> 20, params = info.n_params,
                cache_ram_mib = budgets.0 >> 20, cache_disk_mib = budgets.1 >> 20,
                "model loaded; context: {}", info.context_choice
            ),
        }
        let embedding = pooling.is_some();
        let side_embedder = (!embedding).then(|| SideEmbedder {
            n_batch: config.n_batch.max(1),
            n_threads: (config.n_threads.max(1) as i32, config.n_threads_batch.max(1) as i32),
            started: Mutex::new(None),
        });
        Ok(Self {
            info,
            model,
            template,
            jobs: (!embedding).then_some(jobs_tx),
            embed_jobs: embedding.then_some(embed_tx),
            embed_limit,
            side_embedder,
            stats,
            metrics,
            budgets,
            // An embedding model keeps no slots to save.
            slot_actions: config.slot_save_path.is_some() && !embedding,
            memory_bytes,
            thread: Some(thread),
        })
    }

    /// The chat template in use.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The most tokens one input of [`Backend::embed`] may have (inputs over it are refused or,
    /// with `truncate`, cut); 0 for a generative model.
    pub fn embedding_limit(&self) -> usize {
        self.embed_limit
    }

    /// An embedding model's answer to a generation request.
    fn unsupported(&self, request: &GenerateRequest) -> BackendError {
        BackendError::generation_unsupported(&self.info.id, &request.prompt)
    }

    /// The model thread's job for `request` on its prompt `tokens`, and the stream it answers.
    fn job(
        &self,
        mut request: GenerateRequest,
        tokens: Vec<LlamaToken>,
    ) -> Result<(Job, GenerationStream), BackendError> {
        let constraint =
            tools::constraint(&request.tools, &request.tool_choice, &request.response_format, self.info.tool_format);
        // A grammar that holds from the first token ends the answer when it is complete (only
        // end-of-generation is allowed then); a lazy one (`tool_choice: auto`) may never apply,
        // so `ignore_eos` keeps its meaning there.
        if constraint.as_ref().is_some_and(|c| c.trigger.is_none()) {
            request.sampling.ignore_eos = false;
        }
        let grammar = constraint.map(|c| crate::grammar::sampler(&self.model, &c)).transpose()?;
        let (tx, stream) = GenerationStream::channel(tokens.len() as u32);
        let job = Job {
            tokens,
            sampling: request.sampling,
            grammar,
            stop: request.stop,
            max_tokens: request.max_tokens,
            tx,
            queued_at: Instant::now(),
            prompt_cache_key: request.prompt_cache_key,
            cache_prompt: request.cache_prompt,
            return_tokens: request.return_tokens,
            logprobs: request.logprobs,
            restore: None,
            disk_checked: false,
            forks: Vec::new(),
            id_slot: request.id_slot,
            prompt_logprobs: request.prompt_logprobs,
        };
        // Prompt log-probabilities need logits at every position: nothing cached is reused.
        let job = Job { cache_prompt: job.cache_prompt && job.prompt_logprobs.is_none(), ..job };
        Ok((job, stream))
    }
}

/// The prompt cache beyond the slots, sized as the config says (or by `fit` when it does not).
/// Built on the model thread once the context exists, so the RAM default sees the memory the
/// KV cache took.
fn caches(config: &LlamaConfig, id: &str, n_ctx_slot: u32, jobs: mpsc::Sender<Msg>, metrics: &Arc<Metrics>) -> Caches {
    let ram_budget = config.cache_ram.unwrap_or_else(|| crate::fit::cache_ram(crate::fit::available_memory()));
    let disk = config.cache_dir.as_ref().and_then(|dir| {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the prompt snapshot dir; snapshots are off");
            return None;
        }
        let budget = config.cache_disk.unwrap_or_else(|| crate::fit::cache_disk(dir));
        if budget == 0 {
            return None;
        }
        let disk = DiskConfig {
            dir: dir.clone(),
            budget,
            model_path: config.model_path.clone(),
            model: id.to_owned(),
            n_ctx_slot,
        };
        DiskCache::start(disk, jobs, Arc::clone(metrics))
            .inspect_err(|e| tracing::warn!(error = %e, "cannot start the prompt snapshot thread; snapshots are off"))
            .ok()
    });
    Caches {
        ram: PromptCache::new(ram_budget, Arc::clone(metrics)),
        disk,
        slot_save_path: config.slot_save_path.clone(),
    }
}

/// llama-server's rule for slot file names, a little stricter: a plain name of letters,
/// digits, `.`, `_` and `-`, not starting with a dot, at most 255 bytes.
fn valid_filename(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The template from `--chat-template`, else the GGUF's, else ChatML; and whether there was
/// one (a base model without a template is served for completions only).
fn load_template(model: &LlamaModel, config: &LlamaConfig) -> Result<(ChatTemplate, bool), LlamaError> {
    let vocab = model.vocab();
    let piece = |t: llama_cpp_2::token::LlamaToken| {
        if t.0 < 0 { String::new() } else { String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned() }
    };
    let (bos, eos) = (piece(vocab.bos()), piece(vocab.eos()));
    let source = match &config.chat_template {
        Some(source) => Some(source.clone()),
        None => model.chat_template(None).ok().and_then(|t| t.to_string().ok()),
    };
    match source {
        Some(source) => Ok((ChatTemplate::new(&source, &bos, &eos)?, true)),
        None => {
            tracing::warn!(
                "the model has no chat template: it is served for /v1/completions; chat requests are refused \
                 unless the server is started with --chat-template FILE"
            );
            Ok((ChatTemplate::chatml(), false))
        }
    }
}

/// Bytes of KV cache one token takes: K and V of every layer at F16 (llama.cpp's default
/// cache type), from the GGUF's head counts and sizes.
fn kv_bytes_per_token(model: &LlamaModel) -> u64 {
    let arch = model.meta_val_str("general.architecture").unwrap_or_default();
    let meta = |key: &str| model.meta_val_str(&format!("{arch}.{key}")).ok().and_then(|v| v.parse::<u64>().ok());
    let n_head = u64::from(model.n_head().max(1));
    let head_dim = u64::try_from(model.n_embd()).unwrap_or(0) / n_head;
    let n_head_kv = u64::from(model.n_head_kv().max(1));
    let k = meta("attention.key_length").unwrap_or(head_dim);
    let v = meta("attention.value_length").unwrap_or(head_dim);
    u64::from(model.n_layer()) * n_head_kv * (k + v) * 2
}

/// llama.cpp architectures that are encoders (bidirectional attention, no KV cache): embedding
/// models whatever else their metadata says.
const ENCODERS: [&str; 9] = [
    "bert",
    "modern-bert",
    "nomic-bert",
    "nomic-bert-moe",
    "neo-bert",
    "jina-bert-v2",
    "jina-bert-v3",
    "eurobert",
    "gemma-embedding",
];

/// The GGUF's `{arch}.pooling_type`, when it names one.
fn metadata_pooling(model: &LlamaModel) -> Option<Pooling> {
    let arch = model.meta_val_str("general.architecture").ok()?;
    let value = model.meta_val_str(&format!("{arch}.pooling_type")).ok()?;
    Pooling::from_llama(value.trim().parse::<i32>().ok()?.into())
}

/// Whether `model` is served as an embedding model: `--embeddings`, an encoder architecture
/// (or `{arch}.attention.causal` false), or a pooling type in the GGUF (what converters write
/// for embedding models). Reads metadata only, so it works on a vocabulary-only load.
pub(crate) fn embedding_model(model: &LlamaModel, config: &LlamaConfig) -> bool {
    let arch = model.meta_val_str("general.architecture").unwrap_or_default();
    config.embeddings
        || ENCODERS.contains(&arch.as_str())
        || model.meta_val_str(&format!("{arch}.attention.causal")).is_ok_and(|v| v.trim() == "false")
        || metadata_pooling(model).is_some_and(|p| p != Pooling::None)
}

/// The pooling an embedding model's context uses: `--pooling`, else the GGUF's. `none` (a
/// vector per token) and `rank` (a reranker's score) give no embedding per input.
fn embedding_pooling(model: &LlamaModel, config: &LlamaConfig) -> Result<Pooling, String> {
    match config.pooling.or_else(|| metadata_pooling(model)) {
        None | Some(Pooling::None) => {
            Err("the model has no pooling type (`pooling_type` in its GGUF), and without one llama.cpp gives a vector \
             per token, not per input; choose one with --pooling mean, cls or last (or `pooling` in [[models]])"
                .to_owned())
        }
        Some(Pooling::Rank) => {
            Err("rank pooling scores query-document pairs for reranking, which chorus does not serve; choose \
             --pooling mean, cls or last to embed with this model"
                .to_owned())
        }
        Some(pooling) => Ok(pooling),
    }
}

/// `--ubatch-size`, within `--batch-size`; an embedding model's is the whole batch, so a
/// decode is one micro-batch (see `embed`).
fn n_ubatch(config: &LlamaConfig, embedding: bool) -> u32 {
    let n_batch = config.n_batch.max(1);
    if embedding { n_batch } else { config.n_ubatch.clamp(1, n_batch) }
}

/// `--ctx-size`; or for an embedding model room for one batch (its cells are emptied before
/// every decode); or the fit's choice within free memory and `memory_limit`.
fn choose_ctx(
    config: &LlamaConfig,
    n_ctx_train: u32,
    kv_bytes_per_token: u64,
    model_bytes: u64,
    embedding: bool,
) -> (u32, String) {
    if config.n_ctx != 0 {
        let reason = config.ctx_reason.clone().unwrap_or_else(|| "--ctx-size".to_owned());
        return (config.n_ctx, reason);
    }
    if embedding {
        let n_parallel = config.n_parallel.clamp(1, 256);
        let n_batch = config.n_batch.max(1);
        let per_seq = n_ctx_train.max(1).min(n_batch);
        // A decode holds at most `n_parallel` inputs and `n_batch` tokens, in a unified cache.
        let n_ctx = n_batch.min(per_seq * n_parallel);
        return (n_ctx, format!("an embedding model: one batch of {n_parallel} inputs of up to {per_seq} tokens"));
    }
    let free = crate::fit::available_memory();
    let available = config.memory_limit.map_or(free, |limit| limit.min(free));
    let fit = crate::fit::fit(crate::fit::FitInput {
        n_ctx_train,
        n_parallel: config.n_parallel.clamp(1, 256),
        kv_bytes_per_token,
        model_bytes,
        available_bytes: available,
    });
    (fit.n_ctx, fit.reason)
}

/// llama.cpp's compute buffers, estimated: the logits of a whole micro-batch dominate
/// (`n_ubatch × n_vocab` f32), plus the activations of one (`n_ubatch × n_embd` f32, a few
/// times over) and each slot's output row.
fn compute_bytes(config: &LlamaConfig, n_ubatch: u32, n_vocab: u64, n_embd: u64) -> u64 {
    let n_ubatch = u64::from(n_ubatch);
    let n_parallel = u64::from(config.n_parallel.clamp(1, 256));
    (n_ubatch * n_vocab + n_ubatch * n_embd * 8 + n_parallel * n_vocab) * 4
}

/// What loading `config`'s model would take, without loading its weights (llama.cpp reads the
/// metadata and vocabulary only): the file, the KV cache of the `n_ctx` it would get, and the
/// compute buffers. Blocking.
///
/// # Errors
/// [`LlamaError::Load`] when the file is missing or not a GGUF model.
pub fn estimate(config: &LlamaConfig) -> Result<Estimate, LlamaError> {
    let runtime = runtime()?;
    let path = &config.model_path;
    let load_err = |reason: String| LlamaError::Load { path: path.display().to_string(), reason };
    if !path.is_file() {
        return Err(load_err("no such file".into()));
    }
    let params = LlamaModelParams::default().with_vocab_only(true);
    let model = LlamaModel::load_from_file(runtime, path, &params)
        .map_err(|e| load_err(format!("{e} (is it a GGUF file?)")))?;
    // Without the weights llama.cpp has no hyperparameters: read them from the metadata.
    let arch = model.meta_val_str("general.architecture").unwrap_or_default();
    let meta = |key: &str| model.meta_val_str(&format!("{arch}.{key}")).ok().and_then(|v| v.parse::<u64>().ok());
    let n_embd = meta("embedding_length").unwrap_or(0);
    let n_head = meta("attention.head_count").unwrap_or(1).max(1);
    let n_head_kv = meta("attention.head_count_kv").unwrap_or(n_head).max(1);
    let head_dim = n_embd / n_head;
    let k = meta("attention.key_length").unwrap_or(head_dim);
    let v = meta("attention.value_length").unwrap_or(head_dim);
    let kv = meta("block_count").unwrap_or(0) * n_head_kv * (k + v) * 2;
    let n_ctx_train = meta("context_length").unwrap_or(4096).min(u64::from(u32::MAX)) as u32;
    let file_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let embedding = embedding_model(&model, config);
    let (n_ctx, reason) = choose_ctx(config, n_ctx_train, kv, file_bytes, embedding);
    let compute = compute_bytes(config, n_ubatch(config, embedding), model.n_vocab().max(0) as u64, n_embd);
    let fim = !embedding && crate::prompt::has_fim(&model);
    let chat_template = config.chat_template.is_some() || model.chat_template(None).is_ok();
    let facts = facts(&model, path, &arch, n_ctx_train);
    Ok(Estimate {
        bytes: file_bytes + u64::from(n_ctx) * kv + compute,
        n_ctx,
        reason,
        embedding,
        fim,
        chat_template,
        facts,
    })
}

/// What a GGUF file says of itself, from the metadata of its vocabulary-only load.
fn facts(model: &LlamaModel, path: &std::path::Path, arch: &str, n_ctx_train: u32) -> chorus_engine::ModelFacts {
    let file = std::fs::metadata(path).ok();
    let mut metadata = Vec::new();
    for i in 0..model.meta_count() {
        let Ok(key) = model.meta_key_by_index(i) else { continue };
        // The tokenizer's arrays (vocabulary, merges, scores) are not the model's description.
        if key.starts_with("tokenizer.ggml.") && key != "tokenizer.ggml.model" && key != "tokenizer.ggml.pre" {
            continue;
        }
        if key == "tokenizer.chat_template" {
            continue;
        }
        match model.meta_val_str_by_index(i) {
            Ok(value) if !(value.starts_with('[') && value.len() > 1024) => metadata.push((key, value)),
            _ => {}
        }
    }
    let value = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    chorus_engine::ModelFacts {
        format: "gguf".to_owned(),
        architecture: arch.to_owned(),
        parameter_count: value("general.parameter_count").and_then(|v| v.parse().ok()),
        quantization: value("general.file_type").and_then(|v| v.parse().ok()).and_then(ftype_name).map(str::to_owned),
        context_length: (n_ctx_train > 0).then_some(n_ctx_train),
        chat_template: model.meta_val_str("tokenizer.chat_template").ok(),
        size: file.as_ref().map_or(0, std::fs::Metadata::len),
        modified: file.and_then(|m| m.modified().ok()),
        metadata,
    }
}

/// The name of a GGUF `general.file_type` (llama.cpp's `llama_ftype`, `llama.h`), as
/// llama.cpp's quantize tool and Ollama write it.
fn ftype_name(ftype: u32) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// Bytes of memory on the discrete GPUs llama.cpp sees (their total; 0 on a CPU build or a
/// machine without one), for the model pool's budget.
///
/// # Errors
/// [`LlamaError::Init`] when the llama.cpp runtime cannot start.
pub fn gpu_memory() -> Result<u64, LlamaError> {
    runtime()?;
    Ok(llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .filter(|d| matches!(d.device_type, llama_cpp_2::LlamaBackendDeviceType::Gpu))
        .map(|d| d.memory_total as u64)
        .sum())
}

/// What [`estimate`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Bytes the loaded model would take.
    pub bytes: u64,
    /// The context size it would get, in tokens.
    pub n_ctx: u32,
    /// Why (`--ctx-size`, or the fit's reason).
    pub reason: String,
    /// Whether it would load as an embedding model (serving embeddings, not generation).
    pub embedding: bool,
    /// Whether its vocabulary has fill-in-the-middle tokens (a code model).
    pub fim: bool,
    /// Whether it has a chat template (its own or `--chat-template`): without one it serves
    /// `/v1/completions` only.
    pub chat_template: bool,
    /// What the file says of itself (its metadata).
    pub facts: chorus_engine::ModelFacts,
}

fn file_stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}

impl Backend for LlamaBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate(&self, request: ValidGenerateRequest) -> Result<GenerationStream, BackendError> {
        self.generate_choices(request, 1)?.pop().ok_or(BackendError::Unavailable)
    }

    /// The first choice is one job; the others ride on it as forks, which copy its KV cells
    /// once its prompt is decoded and sample their own first token from its logits (see
    /// `worker`), so the prompt is computed once.
    fn generate_choices(&self, request: ValidGenerateRequest, n: u32) -> Result<Vec<GenerationStream>, BackendError> {
        if !self.info.serves.generation {
            return Err(self.unsupported(request.get()));
        }
        let tokens = crate::prompt::tokenize(&self.model, &self.template, request.get(), self.info.n_ctx_slot)?;
        let n_prompt = tokens.len() as u32;
        if n_prompt >= self.info.n_ctx_slot {
            return Err(BackendError::PromptTooLong { n_prompt, n_ctx: self.info.n_ctx_slot });
        }
        let mut streams = Vec::with_capacity(n as usize);
        let mut jobs = Vec::with_capacity(n as usize);
        for i in 0..n {
            let (job, stream) = self.job(request.for_choice(i).into_inner(), tokens.clone())?;
            jobs.push(job);
            streams.push(stream);
        }
        let mut jobs = jobs.into_iter();
        let Some(mut first) = jobs.next() else { return Ok(streams) };
        // The first choice's key is the conversation's: the others neither take its slot
        // affinity nor write its snapshot.
        first.forks = jobs.map(|fork| Job { prompt_cache_key: None, id_slot: None, ..fork }).collect();
        let sender = self.jobs.as_ref().ok_or(BackendError::Unavailable)?;
        sender.send(Msg::Job(Box::new(first))).map_err(|_| BackendError::Unavailable)?;
        self.metrics.queue_depth.inc_by(i64::from(n));
        Ok(streams)
    }

    fn prompt_tokens(&self, request: &ValidGenerateRequest) -> Result<u32, BackendError> {
        if !self.info.serves.generation {
            return Err(self.unsupported(request.get()));
        }
        Ok(crate::prompt::tokenize(&self.model, &self.template, request.get(), self.info.n_ctx_slot)?.len() as u32)
    }

    fn embed(&self, request: EmbedRequest) -> Result<EmbedReply, BackendError> {
        let (jobs, limit) = match (&self.embed_jobs, &self.side_embedder) {
            (Some(jobs), _) => (jobs.clone(), self.embed_limit),
            (None, Some(side)) => side.start(&self.model, self.info.n_ctx_train, &self.metrics)?,
            (None, None) => {
                return Err(BackendError::Unsupported { model: self.info.id.clone(), what: "embeddings" });
            }
        };
        let inputs = crate::embed::prepare(&self.model, &request, limit)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        jobs.send(Box::new(EmbedJob { inputs, reply })).map_err(|_| BackendError::Unavailable)?;
        Ok(answer)
    }

    fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<Token>, BackendError> {
        let vocab = self.model.vocab();
        Ok(vocab
            .tokenize(text.as_bytes(), add_special, parse_special)
            .into_iter()
            .map(|t| Token { id: t.0, piece: vocab.token_to_piece(t, true, None) })
            .collect())
    }

    fn detokenize(&self, tokens: &[i32]) -> Result<String, BackendError> {
        let n_vocab = self.model.n_vocab();
        if let Some(t) = tokens.iter().find(|&&t| t < 0 || t >= n_vocab) {
            return Err(BackendError::InvalidPrompt(format!("token {t} is not in the vocabulary (0..{n_vocab})")));
        }
        // The pieces joined, as llama-server's `tokens_to_str` does: `llama_detokenize` would
        // also clean up spaces some vocabularies mark (`France ?` came back `France?`).
        let vocab = self.model.vocab();
        let bytes: Vec<u8> = tokens.iter().flat_map(|&t| vocab.token_to_piece(LlamaToken(t), true, None)).collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn apply_template(&self, request: &ValidGenerateRequest) -> Result<String, BackendError> {
        let request = request.get();
        match &request.prompt {
            Prompt::Chat(messages) => {
                crate::prompt::render_chat(&self.template, messages, &request.tools, request.chat_ending)
            }
            other => Err(BackendError::generation_unsupported(&self.info.id, other)),
        }
    }

    fn stats(&self) -> BackendStats {
        let mut stats = match self.stats.lock() {
            Ok(s) => s.snapshot(),
            Err(poisoned) => poisoned.into_inner().snapshot(),
        };
        let m = &self.metrics;
        stats.cache = CacheStats {
            ram_budget: self.budgets.0,
            ram_bytes: m.prompt_cache_ram_bytes.get().max(0) as u64,
            ram_tokens: m.prompt_cache_ram_tokens.get().max(0) as u64,
            disk_budget: self.budgets.1,
            disk_bytes: m.prompt_cache_disk_bytes.get().max(0) as u64,
        };
        stats
    }

    fn slot_action(&self, id_slot: u32, action: SlotAction) -> Result<SlotActionReply, BackendError> {
        if !self.slot_actions {
            return Err(BackendError::SlotActionsDisabled);
        }
        if id_slot >= self.info.n_parallel {
            return Err(BackendError::InvalidSlot { id_slot, last: self.info.n_parallel - 1 });
        }
        if let SlotAction::Save { filename } | SlotAction::Restore { filename } = &action
            && !valid_filename(filename)
        {
            return Err(BackendError::InvalidFilename(filename.clone()));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(BackendError::Unavailable)?;
        jobs.send(Msg::Slot { id_slot, action, reply }).map_err(|_| BackendError::Unavailable)?;
        Ok(answer)
    }

    fn forget(&self, prompt_cache_key: &str) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Msg::Forget(prompt_cache_key.to_owned()));
        }
    }
}

/// The embedding context of a generative model, started by its first embedding request.
struct SideEmbedder {
    n_batch: u32,
    /// `--threads` and `--threads-batch`.
    n_threads: (i32, i32),
    /// The running loop, or why it could not start (kept: a later request gets the same error).
    started: Mutex<Option<Result<SideStarted, String>>>,
}

struct SideStarted {
    jobs: mpsc::Sender<Box<EmbedJob>>,
    /// The most tokens one input may have: the micro-batch, within the training context.
    limit: usize,
    thread: JoinHandle<()>,
}

/// Inputs one side decode holds at most.
const SIDE_SEQUENCES: u32 = 4;

impl SideEmbedder {
    /// The loop's channel and input limit, starting it on the first call: a context of one
    /// batch (`--batch-size` tokens, in one micro-batch) with last-token pooling, the usual
    /// pooling of decoder embedders, running `embed::run` on a thread of its own.
    fn start(
        &self,
        model: &Arc<LlamaModel>,
        n_ctx_train: u32,
        metrics: &Arc<Metrics>,
    ) -> Result<(mpsc::Sender<Box<EmbedJob>>, usize), BackendError> {
        let mut started = self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if started.is_none() {
            *started = Some(self.spawn(model, n_ctx_train, Arc::clone(metrics)));
        }
        match started.as_ref() {
            Some(Ok(s)) => Ok((s.jobs.clone(), s.limit)),
            Some(Err(reason)) => Err(BackendError::Decode(format!("cannot make the embedding context: {reason}"))),
            None => Err(BackendError::Unavailable),
        }
    }

    fn spawn(&self, model: &Arc<LlamaModel>, n_ctx_train: u32, metrics: Arc<Metrics>) -> Result<SideStarted, String> {
        let runtime = runtime().map_err(|e| e.to_string())?;
        let n_batch = self.n_batch.min(n_ctx_train.max(1));
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_batch))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_seq_max(SIDE_SEQUENCES)
            .with_kv_unified(true)
            .with_n_threads(self.n_threads.0)
            .with_n_threads_batch(self.n_threads.1)
            .with_embeddings(true)
            .with_pooling_type(Pooling::Last.to_llama());
        let (jobs, jobs_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let model = Arc::clone(model);
        let thread = std::thread::Builder::new()
            .name("chorus-llama-embed".into())
            .spawn(move || {
                let ctx = match model.new_context(runtime, params) {
                    Ok(ctx) => ctx,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(ctx.n_ubatch() as usize));
                // Its own counters: the generation slots' stay the generation's.
                let stats = Mutex::new(SharedStats::new(SIDE_SEQUENCES));
                crate::embed::run(ctx, SIDE_SEQUENCES as usize, jobs_rx, &stats, &metrics);
            })
            .map_err(|e| e.to_string())?;
        let limit = ready_rx.recv().map_err(|_| "the embedding thread ended while starting".to_owned())??;
        tracing::info!(
            n_ctx = n_batch,
            input_limit = limit,
            "embedding context made for a generative model (last-token pooling)"
        );
        Ok(SideStarted { jobs, limit, thread })
    }
}

impl Drop for LlamaBackend {
    fn drop(&mut self) {
        // The model thread ends after its current step, and its disk thread after the
        // snapshots already queued.
        if let Some(jobs) = self.jobs.take() {
            let _ = jobs.send(Msg::Shutdown);
        }
        // The embedding loop ends when its channel closes.
        self.embed_jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(side) = self.side_embedder.take() {
            let started = side.started.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(Ok(started)) = started {
                drop(started.jobs);
                let _ = started.thread.join();
            }
        }
    }
}
