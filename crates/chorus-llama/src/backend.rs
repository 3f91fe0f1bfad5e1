//! [`LlamaBackend`]: loads a GGUF model, starts its model thread, and
//! implements the engine's [`Backend`] by tokenizing on the caller's thread
//! and queueing the sequence for the model thread.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chorus_engine::tools::{self, ToolFormat};
use chorus_engine::{Backend, BackendError, BackendStats, GenerationStream, Metrics, ModelInfo, ValidGenerateRequest};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend as LlamaRuntime;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;

use crate::LlamaConfig;
use crate::template::{ChatTemplate, TemplateError};
use crate::worker::{self, Job, SharedStats};

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
    jobs: Option<mpsc::Sender<Job>>,
    stats: Arc<Mutex<SharedStats>>,
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
        let (template, has_chat_template) = load_template(&model, config)?;

        let n_ctx_train = model.n_ctx_train();
        let n_parallel = config.n_parallel.clamp(1, 256);
        let kv_bytes_per_token = kv_bytes_per_token(&model);
        let model_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        let (n_ctx, context_choice) = if config.n_ctx == 0 {
            let fit = crate::fit::fit(crate::fit::FitInput {
                n_ctx_train,
                n_parallel,
                kv_bytes_per_token,
                model_bytes,
                available_bytes: crate::fit::available_memory(),
            });
            (fit.n_ctx, fit.reason)
        } else {
            (config.n_ctx, "--ctx-size".to_owned())
        };
        let ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(config.n_batch.max(1))
            .with_n_ubatch(config.n_ubatch.clamp(1, config.n_batch.max(1)))
            .with_n_seq_max(n_parallel)
            .with_kv_unified(config.kv_unified)
            .with_n_threads(config.n_threads.max(1) as i32)
            .with_n_threads_batch(config.n_threads_batch.max(1) as i32);

        let kv_unified = config.kv_unified;
        let stats = Arc::new(Mutex::new(SharedStats::new(n_parallel)));
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let model = Arc::clone(&model);
            let stats = Arc::clone(&stats);
            let metrics = Arc::clone(&metrics);
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
                    let _ = ready_tx.send(Ok((n_ctx, n_ctx_slot)));
                    worker::run(&model, ctx, n_parallel, n_ctx_slot, jobs_rx, &stats, &metrics);
                })
                .map_err(|e| LlamaError::Thread(e.to_string()))?
        };
        let (n_ctx, n_ctx_slot) = match ready_rx.recv() {
            Ok(Ok(n)) => n,
            Ok(Err(reason)) => return Err(LlamaError::Context { n_ctx, reason }),
            Err(_) => return Err(LlamaError::Thread("the model thread ended while starting".into())),
        };

        let info = ModelInfo {
            id: config.alias.clone().unwrap_or_else(|| file_stem(path)),
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
        };
        tracing::info!(
            model = %info.id, n_ctx, n_ctx_slot, n_parallel, kv_unified, n_ctx_train,
            kv_mib = info.kv_bytes >> 20, params = info.n_params,
            "model loaded; context: {}", info.context_choice
        );
        Ok(Self { info, model, template, jobs: Some(jobs_tx), stats, metrics, thread: Some(thread) })
    }

    /// The chat template in use.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }
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

fn file_stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}

impl Backend for LlamaBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate(&self, request: ValidGenerateRequest) -> Result<GenerationStream, BackendError> {
        let mut request = request.into_inner();
        let tokens = crate::prompt::tokenize(&self.model, &self.template, &request)?;
        let constraint =
            tools::constraint(&request.tools, &request.tool_choice, &request.response_format, self.info.tool_format);
        // A grammar that holds from the first token ends the answer when it is complete (only
        // end-of-generation is allowed then); a lazy one (`tool_choice: auto`) may never apply,
        // so `ignore_eos` keeps its meaning there.
        if constraint.as_ref().is_some_and(|c| c.trigger.is_none()) {
            request.sampling.ignore_eos = false;
        }
        let grammar = constraint.map(|c| crate::grammar::sampler(&self.model, &c)).transpose()?;
        let n_prompt = tokens.len() as u32;
        if n_prompt >= self.info.n_ctx_slot {
            return Err(BackendError::PromptTooLong { n_prompt, n_ctx: self.info.n_ctx_slot });
        }
        let (tx, stream) = GenerationStream::channel(n_prompt);
        let job = Job {
            tokens,
            sampling: request.sampling,
            grammar,
            stop: request.stop,
            max_tokens: request.max_tokens,
            tx,
            queued_at: Instant::now(),
        };
        let jobs = self.jobs.as_ref().ok_or(BackendError::Unavailable)?;
        jobs.send(job).map_err(|_| BackendError::Unavailable)?;
        self.metrics.queue_depth.inc();
        Ok(stream)
    }

    fn prompt_tokens(&self, request: &ValidGenerateRequest) -> Result<u32, BackendError> {
        Ok(crate::prompt::tokenize(&self.model, &self.template, request.get())?.len() as u32)
    }

    fn stats(&self) -> BackendStats {
        match self.stats.lock() {
            Ok(s) => s.snapshot(),
            Err(poisoned) => poisoned.into_inner().snapshot(),
        }
    }
}

impl Drop for LlamaBackend {
    fn drop(&mut self) {
        // Closing the job channel ends the model thread after its current step.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
