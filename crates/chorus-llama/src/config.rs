//! [`LlamaConfig`]: how to load a model and size its context, named after
//! llama-server's flags.

use std::path::PathBuf;

/// Load-time settings of one model. Defaults follow llama-server where it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// The id clients use (`model`); the file stem when `None`.
    pub alias: Option<String>,
    /// `--ctx-size`: KV cache size in tokens, shared by all slots; 0 (the
    /// default) takes the model's training context, at least 8,192 tokens per
    /// slot, as far as free memory allows (see `fit`).
    pub n_ctx: u32,
    /// `--batch-size`: the most tokens submitted to one decode step.
    pub n_batch: u32,
    /// `--ubatch-size`: the most tokens llama.cpp computes at once inside a step.
    pub n_ubatch: u32,
    /// `--parallel`: slots, the most sequences decoded at once.
    pub n_parallel: u32,
    /// `--kv-unified`: all slots share one KV cache of `n_ctx` cells, so one
    /// sequence may use all of it (up to the training context). On by default,
    /// as in llama-server; off (`--no-kv-unified`), each slot has `n_ctx /
    /// n_parallel` cells of its own, and attention in a batch of many
    /// sequences only spans each one's cells.
    pub kv_unified: bool,
    /// `--threads`: threads for generation.
    pub n_threads: u32,
    /// Threads for prompt processing (llama.cpp's `n_threads_batch`).
    pub n_threads_batch: u32,
    /// Layers offloaded to a GPU when llama.cpp was built with one.
    pub n_gpu_layers: u32,
    /// `--chat-template FILE` contents: replaces the template in the GGUF.
    pub chat_template: Option<String>,
    /// `--cache-ram`: bytes of sequence state kept in host RAM after they leave their slot;
    /// 0 keeps none, `None` sizes it at load: half the memory left free once the model and
    /// its KV cache are loaded, at most 8 GiB (llama-server's default).
    pub cache_ram: Option<u64>,
    /// Where prompt snapshots are written (`DATA_DIR/kv-cache`); `None` keeps none on disk.
    pub cache_dir: Option<PathBuf>,
    /// `--cache-disk`: bytes of prompt snapshots kept in `cache_dir`; 0 keeps none, `None`
    /// sizes it at load: a tenth of the free disk space there, at most 16 GiB.
    pub cache_disk: Option<u64>,
    /// llama-server's `--slot-save-path`: the directory of `POST /slots/{id}?action=save|restore`
    /// files; `None` refuses slot actions.
    pub slot_save_path: Option<PathBuf>,
    /// The most memory the model may take, in bytes (its share of the model pool's
    /// `--memory-budget`): `n_ctx` 0 is sized within it as well as within free memory.
    pub memory_limit: Option<u64>,
}

impl LlamaConfig {
    /// Defaults for a model file (llama-server's): the fitted context, 4 slots sharing a
    /// unified KV cache, one thread per core.
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get() as u32);
        Self {
            model_path: model_path.into(),
            alias: None,
            n_ctx: 0,
            n_batch: 2048,
            n_ubatch: 512,
            n_parallel: 4,
            kv_unified: true,
            n_threads: threads,
            n_threads_batch: threads,
            n_gpu_layers: 0,
            chat_template: None,
            cache_ram: None,
            cache_dir: None,
            cache_disk: None,
            slot_save_path: None,
            memory_limit: None,
        }
    }
}
