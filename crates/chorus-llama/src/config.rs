//! [`LlamaConfig`]: how to load a model and size its context, named after
//! llama-server's flags, and [`Pooling`], how an embedding model turns its token
//! vectors into one.

use std::path::PathBuf;
use std::str::FromStr;

use llama_cpp_2::context::params::LlamaPoolingType;

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
    /// The most memory the model may take, in bytes (the model pool's `--memory-budget`):
    /// `n_ctx` 0 is sized within it as well as within free host memory.
    pub memory_limit: Option<u64>,
    /// Why `n_ctx` is what it is, when it was chosen for this model rather than given by
    /// `--ctx-size` (the registry fixes the context its estimate was made for); reported in
    /// `/health` and the log.
    pub ctx_reason: Option<String>,
    /// llama-server's `--embeddings`: serve embeddings instead of generation, even for a
    /// model whose GGUF does not say it is an embedding model (BERT-family files and those
    /// with `{arch}.pooling_type` are one without it). An embedding model's context computes
    /// pooled embeddings, with `n_ubatch` = `n_batch` (an input fills at most one micro-batch)
    /// and a unified cache whatever `kv_unified` says; `n_ctx` 0 is one batch's worth.
    pub embeddings: bool,
    /// llama-server's `--pooling`: how an embedding model pools its token vectors; `None`
    /// takes the GGUF's `{arch}.pooling_type`. Ignored for a generative model.
    pub pooling: Option<Pooling>,
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
            ctx_reason: None,
            embeddings: false,
            pooling: None,
        }
    }
}

/// How an embedding model makes one vector of its token vectors (llama-server's `--pooling`,
/// llama.cpp's `llama_pooling_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// No pooling: a vector per token, which `/v1/embeddings` cannot return (refused at load).
    None,
    /// The mean of the token vectors (most sentence-transformers models).
    Mean,
    /// The first token's vector (BERT's `[CLS]`).
    Cls,
    /// The last token's vector (decoder embedding models such as Qwen3-Embedding).
    Last,
    /// A reranker's relevance score (refused at load: chorus serves no reranking).
    Rank,
}

impl Pooling {
    /// Every pooling, in llama-server's order.
    pub const ALL: [Self; 5] = [Self::None, Self::Mean, Self::Cls, Self::Last, Self::Rank];

    /// The name `--pooling` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Mean => "mean",
            Self::Cls => "cls",
            Self::Last => "last",
            Self::Rank => "rank",
        }
    }

    /// llama.cpp's value; [`LlamaPoolingType::Unspecified`] and unknown ones are `None`.
    pub(crate) fn from_llama(pooling: LlamaPoolingType) -> Option<Self> {
        match pooling {
            LlamaPoolingType::None => Some(Self::None),
            LlamaPoolingType::Mean => Some(Self::Mean),
            LlamaPoolingType::Cls => Some(Self::Cls),
            LlamaPoolingType::Last => Some(Self::Last),
            LlamaPoolingType::Rank => Some(Self::Rank),
            LlamaPoolingType::Unspecified => None,
        }
    }

    /// As llama.cpp's context parameter.
    pub(crate) fn to_llama(self) -> LlamaPoolingType {
        match self {
            Self::None => LlamaPoolingType::None,
            Self::Mean => LlamaPoolingType::Mean,
            Self::Cls => LlamaPoolingType::Cls,
            Self::Last => LlamaPoolingType::Last,
            Self::Rank => LlamaPoolingType::Rank,
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pooling {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a pooling type: use none, mean, cls, last or rank"))
    }
}
