//! chorus's own wire types outside the OpenAI surface: `GET /health`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `GET /health`: liveness plus what the server is doing right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `"ok"` while the server accepts requests.
    pub status: String,
    /// Id of the loaded model, as listed by `GET /v1/models`.
    pub model: String,
    /// Seconds since the server started.
    pub uptime_s: u64,
    /// chorus version (the crate version of the server).
    pub version: String,
    /// Slots (sequences that can be decoded at once, `--parallel`) and their use.
    pub slots: SlotsHealth,
    /// What the most recent decode steps held.
    pub decode: DecodeHealth,
    /// The KV cache: its size and why it has that size.
    pub context: ContextHealth,
    /// The prompt cache beyond the slots: budgets and use, in bytes.
    pub cache: CacheHealth,
}

/// The prompt cache in [`Health`]: sequence states kept after they left their slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CacheHealth {
    /// `--cache-ram`: the most bytes kept in host RAM (0: off).
    pub ram_budget_bytes: u64,
    /// Bytes in host RAM now.
    pub ram_bytes: u64,
    /// Tokens those bytes hold.
    pub ram_tokens: u64,
    /// `--cache-disk`: the most bytes of snapshots on disk (0: off).
    pub disk_budget_bytes: u64,
    /// Bytes of snapshots on disk now.
    pub disk_bytes: u64,
}

/// The KV cache in [`Health`], with llama-server's names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContextHealth {
    /// Tokens of KV cache, all slots together (`--ctx-size`).
    pub n_ctx: u32,
    /// The most tokens one sequence can hold, prompt and answer together.
    pub n_ctx_slot: u32,
    /// The context length the model was trained with.
    pub n_ctx_train: u32,
    /// Whether all slots share one cache (`--kv-unified`, the default).
    pub kv_unified: bool,
    /// Bytes of KV cache.
    pub kv_bytes: u64,
    /// Why `n_ctx` is what it is: `--ctx-size`, or what sizing to the machine chose and why
    /// (e.g. "the model's training context: 384 MiB of KV cache, 20480 MiB free after the model").
    pub source: String,
}

/// Slot usage in [`Health`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SlotsHealth {
    /// Number of slots (`--parallel`).
    pub total: u32,
    /// Slots decoding a sequence right now.
    pub busy: u32,
    /// Requests waiting for a free slot.
    pub queued: u32,
}

/// Decode-step statistics in [`Health`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecodeHealth {
    /// Number of sequences held by each of the most recent decode steps, oldest first (at most 32).
    pub last_steps_sequences: Vec<u32>,
    /// The most sequences any decode step held since the server started.
    pub max_sequences: u32,
    /// Decode steps run since the server started.
    pub steps: u64,
}
